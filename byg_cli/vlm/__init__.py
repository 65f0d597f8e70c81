"""Chat backends for vision-language / language models: a local transformers Qwen-VL model or an
OpenAI-compatible chat-completions server (vLLM, SGLang) by URL.

    backend = open_backend("/models/Qwen2.5-VL-7B-Instruct")        # local folder
    backend = open_backend("http://127.0.0.1:8000/v1", model="qwen")  # server
    answers = backend.chat([ChatRequest(text="Describe it.", images=[img])])
"""

from byg_cli.vlm.backend import open_backend
from byg_cli.vlm.chat import ChatBackend, ChatRequest

__all__ = ["ChatBackend", "ChatRequest", "open_backend"]
