"""The judge's chat backend: the shared `byg_cli.vlm` (a transformers model by local path, or an
OpenAI-compatible server by URL). The eval code only needs `ChatRequest` and an object with `chat(requests)`.

`layout="reference"` sends a server the request as VIEScore's OpenAI client builds it: one user message whose
content is the text first, then the images as base64 JPEG (PIL's default quality). byg's own layout puts the
images first, as PNG. A local transformers judge always uses its model's chat template (`layout` "chat-template").
"""

from __future__ import annotations

import base64
import io

from PIL import Image

from byg_cli.errors import BygError
from byg_cli.vlm import ChatBackend, ChatRequest, http_backend, open_backend
from byg_cli.vlm.http_backend import OpenAIChatBackend

LAYOUTS = ("byg", "reference")


def jpeg_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def reference_request_body(req: ChatRequest, model: str) -> dict:
    """Text, then images (JPEG). Temperature and seed are sent as byg sends them (the reference sends none and
    gets the server's default sampling)."""
    content = [{"type": "text", "text": req.text}]
    content += [{"type": "image_url", "image_url": {"url": jpeg_data_url(img)}} for img in req.images]
    messages = ([{"role": "system", "content": req.system}] if req.system else []) + \
        [{"role": "user", "content": content}]
    body = {"model": model, "messages": messages, "max_tokens": req.max_new_tokens, "temperature": req.temperature}
    if req.seed is not None:
        body["seed"] = req.seed
    return body


class ReferenceLayoutBackend(OpenAIChatBackend):
    """The OpenAI-compatible backend (same retries and concurrency) with VIEScore's request layout."""

    layout = "reference"

    def _chat_one(self, req: ChatRequest) -> str:
        resp = self._send("POST", self.url, reference_request_body(req, self.name))
        return http_backend.completion_text(resp, self.url)  # the answer read exactly as byg's own layout reads it


def open_judge(spec: str, *, model: str | None = None, concurrency: int = 8, timeout: float = 120,
               retries: int = 3, batch_size: int = 4, layout: str = "byg") -> ChatBackend:
    """The judge named by a local model path or an OpenAI-compatible URL."""
    if layout not in LAYOUTS:
        raise BygError(f"request layout {layout!r}: choose from {LAYOUTS}")
    if layout == "reference" and spec.startswith(("http://", "https://")):
        return ReferenceLayoutBackend(spec, model=model, concurrency=concurrency, timeout=timeout, retries=retries)
    backend = open_backend(spec, model=model, concurrency=concurrency, timeout=timeout, retries=retries,
                           batch_size=batch_size)
    if not spec.startswith(("http://", "https://")):
        backend.layout = "chat-template"
    return backend


__all__ = ["ChatBackend", "ChatRequest", "open_judge"]
