"""Where the judge's chat backend comes from: the shared `byg_cli.vlm` (transformers by path or an
OpenAI-compatible URL). The eval code only needs `ChatRequest` and an object with `chat(requests)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import PIL.Image

from byg_cli.errors import BygError

try:  # the shared chat backend (branch makedata)
    from byg_cli.vlm import ChatBackend, ChatRequest, open_backend  # type: ignore[attr-defined]

    HAVE_SHARED_BACKEND = True
except ImportError:  # pragma: no cover - only until byg_cli.vlm is merged
    HAVE_SHARED_BACKEND = False

    @dataclass
    class ChatRequest:  # same fields as byg_cli.vlm.ChatRequest
        text: str
        images: list[PIL.Image.Image] = field(default_factory=list)
        system: str | None = None
        max_new_tokens: int = 1024
        temperature: float = 0.0
        seed: int | None = None

    class ChatBackend(Protocol):
        name: str

        def chat(self, requests: list[ChatRequest]) -> list[str]: ...

    def open_backend(spec: str, **_kwargs) -> ChatBackend:
        raise BygError(
            f"judge {spec!r}: the chat backends (byg_cli.vlm) are not part of this build yet; "
            "merge branch makedata to judge with a local model or an OpenAI-compatible URL"
        )


def open_judge(spec: str, *, model: str | None = None, concurrency: int = 8, timeout: float = 120,
               retries: int = 3, batch_size: int = 4) -> ChatBackend:
    """The judge named by a local model path or an OpenAI-compatible URL."""
    return open_backend(spec, model=model, concurrency=concurrency, timeout=timeout, retries=retries,
                        batch_size=batch_size)


__all__ = ["ChatBackend", "ChatRequest", "HAVE_SHARED_BACKEND", "open_judge"]
