"""The OpenAI-compatible URL backend against a real HTTP server on loopback."""

import base64
import io
import time

import pytest
from helpers.makedata_support import ChatServer, user_text
from PIL import Image

from byg_cli.errors import BygError
from byg_cli.vlm import ChatBackend, ChatRequest, open_backend
from byg_cli.vlm.http_backend import OpenAIChatBackend, completions_url


def echo(body):
    return "echo: " + user_text(body)


def test_order_images_and_fields_over_concurrent_requests():
    # Later requests answer faster, so completion order differs from request order.
    def slow_first(body):
        n = int(user_text(body).split()[-1])
        time.sleep(0.02 * (5 - n))
        return f"answer {n}"

    img = Image.new("RGB", (8, 6), (255, 0, 0))
    with ChatServer(answer=slow_first, model="served-name") as server:
        backend = open_backend(server.url, concurrency=5)
        assert isinstance(backend, ChatBackend)
        assert backend.name == "served-name"  # asked the server's /v1/models
        reqs = [ChatRequest(text=f"question {n}", images=[img] * (n % 2), system="be brief", max_new_tokens=77,
                            temperature=0.5, seed=n) for n in range(5)]
        assert backend.chat(reqs) == [f"answer {n}" for n in range(5)]
    body = next(b for b in server.bodies if user_text(b) == "question 1")
    assert body["model"] == "served-name"
    assert body["max_tokens"] == 77 and body["temperature"] == 0.5 and body["seed"] == 1
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    url = body["messages"][1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.size == (8, 6) and decoded.getpixel((0, 0)) == (255, 0, 0)


def test_retries_on_5xx_and_timeouts_then_succeeds():
    with ChatServer(answer=echo, plan=[500, "hang", 503]) as server:
        backend = OpenAIChatBackend(server.url, model="m", concurrency=1, timeout=0.3, retries=3, backoff=0.01)
        assert backend.chat([ChatRequest(text="hi")]) == ["echo: hi"]
        assert server.posts == 4


def test_gives_up_after_retries_with_a_clear_error():
    with ChatServer(answer=echo, plan=[500] * 10) as server:
        backend = OpenAIChatBackend(server.url, model="m", retries=2, backoff=0.01)
        with pytest.raises(BygError, match=r"chat/completions: no answer after 3 attempt\(s\) \(last: HTTP 500\)"):
            backend.chat([ChatRequest(text="hi")])
        assert server.posts == 3


def test_4xx_is_not_retried_and_names_url_and_status():
    with ChatServer(answer=echo, plan=[400]) as server:
        backend = open_backend(server.url, model="m", retries=3)
        with pytest.raises(BygError) as info:
            backend.chat([ChatRequest(text="hi")])
        assert server.url + "/chat/completions" in str(info.value) and "HTTP 400" in str(info.value)
        assert server.posts == 1


def test_connection_refused_is_retried_then_reported():
    with ChatServer() as server:
        url = server.url
    backend = OpenAIChatBackend(url, model="m", retries=1, backoff=0.01, timeout=1)
    with pytest.raises(BygError, match="connection error"):
        backend.chat([ChatRequest(text="hi")])


def test_url_forms():
    assert completions_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert completions_url("https://h/v1/chat/completions") == "https://h/v1/chat/completions"


def test_model_name_lookup_failure_says_to_pass_it():
    with ChatServer() as server:
        with pytest.raises(BygError, match="HTTP 404.*pass it to skip this"):
            open_backend(server.url.replace("/v1", "/nope/v1"))
