"""An OpenAI-compatible chat-completions server (vLLM, SGLang, ...) reached over HTTP with httpx.

Images travel as base64 `data:` URLs. Requests run concurrently on a thread pool; timeouts, connection errors,
429 and 5xx answers are retried with exponential backoff; any other 4xx stops the job with a BygError naming the
URL and the status. An API key, if the server wants one, is read from OPENAI_API_KEY.
"""

from __future__ import annotations

import base64
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from PIL import Image

from byg_cli.errors import BygError
from byg_cli.vlm.backend import ChatRequest

RETRYABLE_STATUS = {408, 429}


def completions_url(spec: str) -> str:
    """Accept http://host:port, http://host:port/v1 or the full .../v1/chat/completions address."""
    url = spec.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def image_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def request_body(req: ChatRequest, model: str) -> dict:
    messages = []
    if req.system:
        messages.append({"role": "system", "content": req.system})
    content = [{"type": "image_url", "image_url": {"url": image_data_url(img)}} for img in req.images]
    content.append({"type": "text", "text": req.text})
    messages.append({"role": "user", "content": content})
    body = {"model": model, "messages": messages, "max_tokens": req.max_new_tokens, "temperature": req.temperature}
    if req.seed is not None:
        body["seed"] = req.seed
    return body


class OpenAIChatBackend:
    def __init__(
        self,
        spec: str,
        *,
        model: str | None = None,
        concurrency: int = 8,
        timeout: float = 120,
        retries: int = 3,
        backoff: float = 1.0,
    ):
        if concurrency < 1:
            raise BygError(f"concurrency must be at least 1, got {concurrency}")
        self.url = completions_url(spec)
        self.concurrency = concurrency
        self.retries = max(0, retries)
        self.backoff = backoff
        headers = {}
        if os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        self.client = httpx.Client(timeout=timeout, headers=headers)
        self.name = model or self._first_served_model()

    def _first_served_model(self) -> str:
        models_url = self.url[: -len("/chat/completions")] + "/models"
        try:
            return self._send("GET", models_url, None).json()["data"][0]["id"]
        except (KeyError, IndexError, TypeError, ValueError):
            raise BygError(f"{models_url}: no model name in the server's answer; pass the model name") from None
        except BygError as err:
            raise BygError(f"{err} (asked for the served model's name; pass it to skip this)") from None

    def _send(self, method: str, url: str, body: dict | None) -> httpx.Response:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self.client.request(method, url, json=body)
            except httpx.TimeoutException:
                last = "timed out"
                continue
            except httpx.TransportError as err:
                last = f"connection error: {err}"
                continue
            if resp.status_code >= 500 or resp.status_code in RETRYABLE_STATUS:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                raise BygError(f"{url}: HTTP {resp.status_code}: {resp.text[:300]}")
            return resp
        raise BygError(f"{url}: no answer after {self.retries + 1} attempt(s) (last: {last})")

    def _chat_one(self, req: ChatRequest) -> str:
        resp = self._send("POST", self.url, request_body(req, self.name))
        try:
            content = resp.json()["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError, ValueError):
            raise BygError(f"{self.url}: answer is not a chat completion: {resp.text[:300]}") from None
        return content or ""

    def chat(self, requests: list[ChatRequest]) -> list[str]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._chat_one, requests))

    def close(self) -> None:
        self.client.close()
