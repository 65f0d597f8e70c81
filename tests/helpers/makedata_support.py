"""Helpers for the make-data tests: a tiny random Qwen2-VL model with an offline tokenizer, a real
OpenAI-compatible chat-completions server on loopback, and small image folders."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

from PIL import Image

from helpers.loopback import LoopbackServer, QuietJSONHandler

SPECIAL = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = ('{ } " : , [ ] edit_type src_caption instruction tgt_caption reverse_instruction color_change remove '
          "a red car on the street change the color to blue now without restore the original image of dog cat")


def build_tiny_qwen_vl(folder: Path, family: str = "qwen2_vl") -> Path:
    """Save a random Qwen-VL model of `family` (qwen2_vl, qwen2_5_vl or qwen3_vl; 2 text layers, width 32) with a
    word-level tokenizer trained offline and the family's real processor; AutoProcessor and
    AutoModelForImageTextToText load it back. initializer_range=0.5 makes its garbage varied."""
    import torch
    import transformers as T
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([CORPUS] * 3, trainers.WordLevelTrainer(special_tokens=SPECIAL))
    ids = {s: tok.token_to_id(s) for s in SPECIAL}
    fast = T.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<|endoftext|>",
                                     eos_token="<|im_end|>", model_max_length=4096,
                                     additional_special_tokens=SPECIAL[2:])
    text = dict(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                initializer_range=0.5)
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    small = dict(min_pixels=28 * 28, max_pixels=28 * 28 * 4)
    if family == "qwen2_vl":
        config = T.Qwen2VLConfig(text_config=text, vision_config=dict(
            depth=1, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2, patch_size=14), **tokens)
        model_cls, proc_cls = T.Qwen2VLForConditionalGeneration, T.Qwen2VLProcessor
        image_proc, video_proc = T.Qwen2VLImageProcessor(**small), T.Qwen2VLVideoProcessor()
    elif family == "qwen2_5_vl":
        config = T.Qwen2_5_VLConfig(text_config=text, vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=14, window_size=56,
            out_hidden_size=32, fullatt_block_indexes=[1]), **tokens)
        model_cls, proc_cls = T.Qwen2_5_VLForConditionalGeneration, T.Qwen2_5_VLProcessor
        image_proc, video_proc = T.Qwen2VLImageProcessor(**small), T.Qwen2VLVideoProcessor()
    elif family == "qwen3_vl":
        config = T.Qwen3VLConfig(text_config={**text, "head_dim": 8}, vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=16, out_hidden_size=32,
            num_position_embeddings=16, deepstack_visual_indexes=[1]), **tokens)
        model_cls, proc_cls = T.Qwen3VLForConditionalGeneration, T.Qwen3VLProcessor
        image_proc = T.Qwen2VLImageProcessor(patch_size=16, min_pixels=32 * 32, max_pixels=32 * 32 * 4)
        video_proc = T.Qwen3VLVideoProcessor()
    else:
        raise ValueError(family)
    torch.manual_seed(0)
    model_cls(config).save_pretrained(folder)
    proc_cls(image_processor=image_proc, tokenizer=fast, video_processor=video_proc,
             chat_template=CHAT_TEMPLATE).save_pretrained(folder)
    return folder


def make_images(folder: Path, n: int) -> list[Path]:
    """n small images of three formats, some in a sub-folder."""
    paths = []
    for i in range(n):
        sub = folder / ("nested" if i % 3 == 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        ext = ("jpg", "png", "webp")[i % 3]
        p = sub / f"img{i:03d}.{ext}"
        Image.new("RGB", (40 + 4 * (i % 5), 32), ((37 * i) % 256, (91 * i) % 256, 120)).save(p)
        paths.append(p)
    return paths


ALLOWED_LINE = re.compile(r'^- "([a-z_]+)"', re.MULTILINE)


def allowed_types_of(prompt: str) -> list[str]:
    return ALLOWED_LINE.findall(prompt)


def good_answer(prompt: str) -> str:
    """A well-formed answer choosing the first allowed type, wrapped in a markdown fence with chatter."""
    edit = {
        "edit_type": allowed_types_of(prompt)[0],
        "src_caption": "A red car parked on a quiet street.",
        "instruction": "Change the car color to blue.",
        "tgt_caption": "A blue car parked on a quiet street.",
        "reverse_instruction": "Change the car color to red.",
    }
    return "Here is the edit:\n```json\n" + json.dumps(edit, indent=1) + "\n```"


def bad_answer(prompt: str) -> str:
    edit = json.loads(good_answer(prompt).split("```json\n")[1].split("```")[0])
    edit["reverse_instruction"] = "Restore the original color."
    return json.dumps(edit)


def user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else " ".join(c["text"] for c in content if c["type"] == "text")


class ChatServer(LoopbackServer):
    """A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol.

    `answer(body) -> str` makes the assistant message; `plan` is a list consumed one entry per POST, each entry
    an int status to send (e.g. 500), "hang" (sleep past the client's timeout) or None (answer normally);
    `delay` slows every answer; every request body is kept in `bodies`."""

    def __init__(self, answer=None, plan=None, delay: float = 0.0, model: str = "stub-vlm"):
        self.answer = answer or (lambda body: good_answer(user_text(body)))
        self.plan = list(plan or [])
        self.delay = delay
        self.model = model
        self.bodies: list[dict] = []
        self.posts = 0
        self.lock = threading.Lock()
        server = self

        class Handler(QuietJSONHandler):
            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self.send_json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self.send_json(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.posts += 1
                    step = server.plan.pop(0) if server.plan else None
                    server.bodies.append(body)
                if self.path != "/v1/chat/completions":
                    return self.send_json(404, {"error": f"no route {self.path}"})
                if isinstance(step, int):
                    return self.send_json(step, {"error": {"message": f"canned {step}"}})
                if step == "hang":
                    time.sleep(1.0)
                    return
                if server.delay:
                    time.sleep(server.delay)
                text = server.answer(body)
                self.send_json(200, {"id": "x", "object": "chat.completion", "model": body.get("model"),
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": text}}]})

        super().__init__(Handler)
