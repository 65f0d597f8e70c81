"""`open_backend`, which picks the chat backend's implementation from the spec."""

from __future__ import annotations

from byg_cli.vlm.chat import ChatBackend


def open_backend(
    spec: str,
    *,
    model: str | None = None,
    concurrency: int = 8,
    timeout: float = 120,
    retries: int = 3,
    batch_size: int = 4,
) -> ChatBackend:
    """`spec` starting with http:// or https:// is an OpenAI-compatible server (`model` names the served model,
    default: the first one the server lists); anything else is a local transformers model folder, run in batches
    of `batch_size`."""
    if spec.startswith(("http://", "https://")):
        from byg_cli.vlm.http_backend import OpenAIChatBackend

        return OpenAIChatBackend(spec, model=model, concurrency=concurrency, timeout=timeout, retries=retries)
    from byg_cli.vlm.transformers_backend import TransformersChatBackend

    return TransformersChatBackend(spec, batch_size=batch_size)
