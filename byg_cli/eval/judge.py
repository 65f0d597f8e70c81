"""The judge's chat backend: the shared `byg_cli.vlm` (a transformers model by local path, or an
OpenAI-compatible server by URL). The eval code only needs `ChatRequest` and an object with `chat(requests)`."""

from __future__ import annotations

from byg_cli.vlm import ChatBackend, ChatRequest, open_backend


def open_judge(spec: str, *, model: str | None = None, concurrency: int = 8, timeout: float = 120,
               retries: int = 3, batch_size: int = 4) -> ChatBackend:
    """The judge named by a local model path or an OpenAI-compatible URL."""
    return open_backend(spec, model=model, concurrency=concurrency, timeout=timeout, retries=retries,
                        batch_size=batch_size)


__all__ = ["ChatBackend", "ChatRequest", "open_judge"]
