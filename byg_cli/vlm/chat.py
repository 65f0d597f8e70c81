"""What every chat backend takes and answers: the request type and the backend protocol."""

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
