"""Test helpers for the eval tests: a GEdit-format parquet writer, a real OpenAI-compatible judge server on
loopback, and tiny random CLIP / DINO / RAFT models saved to local paths."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Callable

import numpy as np
import PIL.Image
import PIL.ImageOps
import pyarrow as pa
import pyarrow.parquet as pq

from helpers.loopback import LoopbackServer, QuietJSONHandler


IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def png_bytes(image: PIL.Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def write_gedit_parquet(path: Path, rows: list[dict]) -> Path:
    """rows: task_type, key, instruction, instruction_language, input_image (PIL), input_image_raw (PIL),
    Intersection_exist; images are stored as the datasets library stores an Image feature."""
    def img(im):
        return {"bytes": png_bytes(im), "path": None}

    table = pa.table({
        "task_type": pa.array([r["task_type"] for r in rows], pa.string()),
        "key": pa.array([r["key"] for r in rows], pa.string()),
        "instruction": pa.array([r["instruction"] for r in rows], pa.string()),
        "instruction_language": pa.array([r["instruction_language"] for r in rows], pa.string()),
        "input_image": pa.array([img(r["input_image"]) for r in rows], IMAGE_STRUCT),
        "input_image_raw": pa.array([img(r["input_image_raw"]) for r in rows], IMAGE_STRUCT),
        "Intersection_exist": pa.array([r["Intersection_exist"] for r in rows], pa.bool_()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def decode_data_url(url: str) -> PIL.Image.Image:
    header, data = url.split(",", 1)
    assert header.startswith("data:image/"), header
    return PIL.Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


Policy = Callable[[str, list[PIL.Image.Image]], str]


class JudgeServer(LoopbackServer):
    """A real HTTP server speaking OpenAI chat completions; `policy(prompt, images)` writes each answer."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.requests: list[dict] = []
        outer = self

        class Handler(QuietJSONHandler):
            def do_GET(self):
                if not self.path.endswith("/models"):
                    self.send_error(404)
                    return
                self.send_json(200, {"object": "list", "data": [{"id": "judge", "object": "model"}]})

            def do_POST(self):
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                texts, images = [], []
                for message in body["messages"]:
                    content = message["content"]
                    if isinstance(content, str):
                        texts.append(content)
                        continue
                    for part in content:
                        if part["type"] == "text":
                            texts.append(part["text"])
                        elif part["type"] == "image_url":
                            images.append(decode_data_url(part["image_url"]["url"]))
                answer = outer.policy("\n".join(texts), images)
                self.send_json(200, {
                    "id": "cmpl-test", "object": "chat.completion", "model": body.get("model", "judge"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": answer}}],
                })

        super().__init__(Handler)


def open_test_judge(url: str):
    """The shared OpenAI-compatible backend pointed at the loopback server."""
    from byg_cli.eval.judge import open_judge

    return open_judge(url, model="judge", concurrency=2, timeout=30, retries=0)


def mean_abs_diff(a: PIL.Image.Image, b: PIL.Image.Image) -> float:
    b = b.resize(a.size)
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


# ------------------------------------------------------------------------------------ tiny models on disk


TINY_CLIP_CFG = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}


def make_tiny_clip(folder: Path) -> Path:
    """An open_clip model with random weights in the `local-dir` layout (config + safetensors)."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(TINY_CLIP_CFG))
    torch.manual_seed(0)
    model = _build_clip()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def _build_clip():
    from open_clip.model import CLIP

    cfg = TINY_CLIP_CFG["model_cfg"]
    return CLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"])


def make_tiny_dino(folder: Path) -> Path:
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64)
    ViTModel(cfg).save_pretrained(folder)
    return folder


def make_tiny_raft(path: Path) -> Path:
    import torch
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    torch.save({"module." + k: v for k, v in raft_small(weights=None).state_dict().items()}, path)
    return path


def moving_square_video(n_frames: int = 8, size: int = 64, step: int = 4, square: int = 16) -> np.ndarray:
    """A bright square moving right by `step` pixels a frame over a dark background, (T, H, W, 3) uint8."""
    frames = np.full((n_frames, size, size, 3), 30, np.uint8)
    for t in range(n_frames):
        x = 4 + t * step
        frames[t, 24 : 24 + square, x : x + square] = (230, 200, 40)
    return frames


class InvertEditor:
    """A deterministic stand-in for byg_cli.edit.Editor (same `edit` signature): inverts the colours."""

    def __init__(self):
        self.calls = 0

    def edit(self, images, instructions, *, steps=20, seed=0):
        self.calls += 1
        assert len(images) == len(instructions)
        return [PIL.ImageOps.invert(im.convert("RGB")) for im in images]


def make_tiny_openai_clip(path: Path) -> Path:
    """A random CLIP saved as an OpenAI-format state_dict file (what ViT-L-14.pt holds, at a tiny size)."""
    import torch
    from open_clip.model import CLIP

    torch.manual_seed(1)
    vision = {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16}
    text = {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}
    model = CLIP(32, vision, text, quick_gelu=True)
    torch.save(model.state_dict(), path)
    return path
