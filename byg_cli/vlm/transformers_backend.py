"""A local Qwen-VL-family model run with transformers (AutoProcessor + AutoModelForImageTextToText), in
left-padded batches. Qwen2-VL, Qwen2.5-VL and Qwen3-VL are tested with tiny random models; Qwen3-VL-MoE and
Qwen3.5 load through the same classes and are accepted, untested here. On a GPU the model is loaded in bf16 with
device_map="auto".

Images go through the model's own chat template as `{"type": "image"}` parts; a request without images is plain
text chat, which is how the video captions are sanitised.
"""

from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path

from byg_cli.errors import BygError
from byg_cli.vlm.chat import ChatRequest

SUPPORTED_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe")


def _read_model_type(folder: Path) -> str:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise BygError(f"{folder}: not a transformers model folder (no config.json)")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except json.JSONDecodeError as err:
        raise BygError(f"{config_file}: not valid JSON ({err.msg})") from None
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise BygError(
            f"{config_file}: model_type {model_type!r} is not a Qwen-VL-family model "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    return model_type


def _messages(req: ChatRequest) -> list[dict]:
    messages = []
    if req.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": req.system}]})
    content = [{"type": "image"} for _ in req.images] + [{"type": "text", "text": req.text}]
    messages.append({"role": "user", "content": content})
    return messages


class TransformersChatBackend:
    def __init__(self, path: str | Path, *, batch_size: int = 4, device: str | None = None):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = Path(path)
        if not folder.is_dir():
            raise BygError(f"{folder}: no such model folder (give a local folder or an http(s):// server URL)")
        _read_model_type(folder)
        if batch_size < 1:
            raise BygError(f"batch size must be at least 1, got {batch_size}")
        self.name = folder.name
        self.batch_size = batch_size
        on_gpu = device is None and torch.cuda.is_available()
        dtype = torch.bfloat16 if on_gpu or (device or "").startswith("cuda") else torch.float32
        self.processor = AutoProcessor.from_pretrained(folder)
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if on_gpu:  # spread a large model over the visible GPUs
            self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype, device_map="auto").eval()
        else:
            self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype).to(device or "cpu").eval()

    def chat(self, requests: list[ChatRequest]) -> list[str]:
        answers: list[str | None] = [None] * len(requests)
        # Requests that share generation settings run together, batch_size at a time.
        order = sorted(range(len(requests)), key=lambda i: self._settings(requests[i]))
        for _, same in groupby(order, key=lambda i: self._settings(requests[i])):
            same = list(same)
            for start in range(0, len(same), self.batch_size):
                chunk = same[start : start + self.batch_size]
                for i, text in zip(chunk, self._generate([requests[i] for i in chunk])):
                    answers[i] = text
        return answers  # type: ignore[return-value]

    @staticmethod
    def _settings(req: ChatRequest) -> tuple:
        return (req.temperature, req.max_new_tokens, req.seed if req.temperature > 0 else None)

    def _generate(self, batch: list[ChatRequest]) -> list[str]:
        import torch

        texts = [
            self.processor.apply_chat_template(_messages(r), add_generation_prompt=True, tokenize=False) for r in batch
        ]
        images = [img.convert("RGB") for r in batch for img in r.images]
        enc = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True).to(self.model.device)
        first = batch[0]
        kwargs = dict(max_new_tokens=first.max_new_tokens, pad_token_id=self.processor.tokenizer.pad_token_id)
        if first.temperature > 0:
            if first.seed is not None:
                torch.manual_seed(first.seed)
            kwargs.update(do_sample=True, temperature=first.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        return [t.strip() for t in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]
