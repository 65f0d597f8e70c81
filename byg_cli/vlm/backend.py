"""The request type, the backend protocol and `open_backend`, which picks the implementation from the spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from PIL import Image


@dataclass
class ChatRequest:
    """One single-turn chat: an optional system prompt, then a user turn made of the images and the text."""

    text: str
    images: list[Image.Image] = field(default_factory=list)
    system: str | None = None
    max_new_tokens: int = 1024
    temperature: float = 0.0
    seed: int | None = None


@runtime_checkable
class ChatBackend(Protocol):
    name: str  # model name recorded in outputs

    def chat(self, requests: list[ChatRequest]) -> list[str]:
        """Answer every request; the answers come back in the order of the requests."""
        ...


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
