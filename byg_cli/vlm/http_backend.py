"""An OpenAI-compatible chat-completions server (vLLM, SGLang, ...) reached over HTTP with httpx.

Images travel as base64 `data:` URLs. Requests run concurrently on a thread pool; timeouts, connection errors,
429 and 5xx answers are retried with exponential backoff; any other 4xx stops the job with a BygError naming the
URL and the status. An API key, if the server wants one, is read from OPENAI_API_KEY.

`timeout` is a deadline for each attempt of a request as a whole (connecting, sending, every byte of the answer),
not per socket read as httpx's own timeouts are: a server trickling its answer cannot hold an attempt past it
(a timed-out attempt is retried like any other timeout). The
answer's content may be a string or a list of OpenAI content parts (their text is joined); content that is no
text (a number, an object) is passed on as it is, for the caller's parser to reject and count.
"""

from __future__ import annotations

import base64
import io
import math
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from PIL import Image

from byg_cli.errors import BygError
from byg_cli.vlm.chat import ChatRequest

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


def message_text(content: object) -> object:
    """A chat message's content as text: a string as it is, OpenAI content parts
    (`[{"type": "text", "text": ...}, ...]`) as their text joined, None as "". Anything else is returned
    unchanged (it is no text; the parsers reject it with a reason)."""
    if content is None:
        return ""
    if isinstance(content, list):
        texts = [part["text"] for part in content
                 if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)]
        if texts or not content:
            return "".join(texts)
    return content


def completion_text(resp: httpx.Response, url: str) -> object:
    """The first choice's message text of a chat-completion response (see `message_text`)."""
    try:
        content = resp.json()["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError, ValueError, RecursionError):
        raise BygError(f"{url}: answer is not a chat completion: {resp.text[:300]}") from None
    return message_text(content)


class _Deadline:
    """Shuts a request's connection once `seconds` have passed, in whatever phase the request is. httpcore's
    `trace` extension hands over each new connection's stream; the client keeps no connection alive, so the
    stream a request gets is its own."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict) -> None:
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            with self._lock:
                self._sock = info["return_value"].get_extra_info("socket")
                if self.expired:
                    self._shut()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read or write at once
            except OSError:
                pass  # already closed: the request ended meanwhile

    def cancel(self) -> None:
        self._timer.cancel()


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
        if not (timeout > 0 and math.isfinite(timeout)):
            raise BygError(f"timeout must be a positive number of seconds, got {timeout:g}")
        self.url = completions_url(spec)
        self.timeout = timeout
        self.concurrency = concurrency
        self.retries = max(0, retries)
        self.backoff = backoff
        headers = {}
        if os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        self.client = httpx.Client(timeout=timeout, headers=headers, limits=httpx.Limits(max_keepalive_connections=0))
        self.name = model or self._first_served_model()

    def _first_served_model(self) -> str:
        models_url = self.url[: -len("/chat/completions")] + "/models"
        try:
            return self._send("GET", models_url, None).json()["data"][0]["id"]
        except (KeyError, IndexError, TypeError, ValueError, RecursionError):
            raise BygError(f"{models_url}: no model name in the server's answer; pass the model name") from None
        except BygError as err:
            raise BygError(f"{err} (asked for the served model's name; pass it to skip this)") from None

    def _send(self, method: str, url: str, body: dict | None) -> httpx.Response:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self._attempt(method, url, body)
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout:g} s"
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

    def _attempt(self, method: str, url: str, body: dict | None) -> httpx.Response:
        """One request, ended when it runs past `self.timeout` seconds in all."""
        deadline = _Deadline(self.timeout)
        try:
            return self.client.request(method, url, json=body, extensions={"trace": deadline.trace})
        except httpx.TransportError:
            if deadline.expired:
                raise httpx.TimeoutException(f"no complete answer within {self.timeout:g} s") from None
            raise
        finally:
            deadline.cancel()

    def _chat_one(self, req: ChatRequest) -> str:
        resp = self._send("POST", self.url, request_body(req, self.name))
        return completion_text(resp, self.url)  # type: ignore[return-value]  # non-text goes on to be rejected

    def chat(self, requests: list[ChatRequest]) -> list[str]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._chat_one, requests))

    def close(self) -> None:
        self.client.close()
