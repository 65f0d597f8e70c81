"""The models behind the video metrics, each loaded from a local path (nothing is ever downloaded):
CLIP (open_clip), DINO (transformers ViT / DINOv2), RAFT (torchvision) and the LAION aesthetic head."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from byg_cli.errors import BygError
from byg_cli.extras import require

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise BygError(f"{what} {path}: no such file or folder")
    return path


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


def resize_crop_normalize(frames: torch.Tensor, resize: int, crop: int, mean, std, *,
                          antialias: bool = True) -> torch.Tensor:
    """Short side to `resize` (bicubic, antialiased like PIL), centre crop `crop`, /255, normalise."""
    x = TF.resize(frames, [resize], interpolation=TF.InterpolationMode.BICUBIC, antialias=antialias)
    x = TF.center_crop(x, [crop, crop])
    x = x.float() / 255.0
    return TF.normalize(x, list(mean), list(std))


def squash_normalize(frames: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """InstructPix2Pix's `ClipSimilarity`: the whole frame to size x size (aspect ratio not kept), bicubic
    `F.interpolate` on floats in [0, 1] (no antialiasing, no clamping), normalise."""
    x = F.interpolate(frames.float() / 255.0, size=(size, size), mode="bicubic", align_corners=False)
    return TF.normalize(x, list(mean), list(std))


def vbench_clip_normalize(frames: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """VBench's `clip_transform` (aesthetic quality) on the float frames its `load_video` returns (0..255, never
    rounded or clamped): v1 `Resize` of the short side, bicubic, without antialiasing (what torchvision < 0.16,
    which VBench pins, does to tensors), centre crop, /255, normalise."""
    x = TF.resize(frames.float(), [size], interpolation=TF.InterpolationMode.BICUBIC, antialias=False)
    x = TF.center_crop(x, [size, size]) / 255.0
    return TF.normalize(x, list(mean), list(std))


CLIP_PREPROCESS = {  # name -> (frames, size, mean, std) -> model input
    "squash": squash_normalize,  # CLIP directional similarity, as InstructPix2Pix (the default)
    "crop": lambda frames, size, mean, std: resize_crop_normalize(frames, size, size, mean, std),
    "vbench": vbench_clip_normalize,  # aesthetic quality, as VBench
}


class ClipEncoder:
    """open_clip model from a local folder (open_clip_config.json + weights, `local-dir` layout), from an
    OpenAI checkpoint file (ViT-L-14.pt, as VBench loads it; the architecture is read from the weights), or
    from a weights file of a named open_clip architecture (`arch`)."""

    def __init__(self, path: Path, *, arch: str | None = None, device: str = "cpu", batch_size: int = 32):
        open_clip = require("open_clip", "eval", "CLIP metrics")

        _require(path, "CLIP model")
        if path.is_dir():
            if not (path / "open_clip_config.json").exists():
                raise BygError(f"CLIP model {path}: a folder needs open_clip_config.json and a weights file")
            name = f"local-dir:{path}"
            model = open_clip.create_model(name, device=device)
            self.tokenizer = open_clip.get_tokenizer(name)
        elif arch:
            try:
                model = open_clip.create_model(arch, pretrained=str(path), device=device)
            except RuntimeError as err:
                raise BygError(f"CLIP weights {path} do not load as {arch}: {err}") from err
            self.tokenizer = open_clip.get_tokenizer(arch)
        else:  # an OpenAI checkpoint (JIT archive such as ViT-L-14.pt, or its state_dict): shape read from it
            try:
                model = open_clip.load_openai_model(str(path), precision="fp32", device=device)
            except (RuntimeError, KeyError, pickle.UnpicklingError) as err:
                raise BygError(f"CLIP weights {path}: not an OpenAI CLIP checkpoint ({err}); "
                               "give --clip-arch for other open_clip weights") from err
            self.tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=model.context_length)
        self.model = model.eval()
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.size = size if isinstance(size, int) else size[0]
        self.mean, self.std = tuple(cfg.get("mean", CLIP_MEAN)), tuple(cfg.get("std", CLIP_STD))
        self.device, self.batch_size = device, batch_size

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[-1]) if hasattr(self.model, "text_projection") and \
            self.model.text_projection is not None else int(self.model.visual.output_dim)

    @torch.no_grad()
    def images(self, frames: np.ndarray, *, preprocess: str = "squash") -> torch.Tensor:
        """L2-normalised image embeddings (T, D), float32; `preprocess` names a CLIP_PREPROCESS entry."""
        if preprocess not in CLIP_PREPROCESS:
            raise BygError(f"CLIP preprocessing {preprocess!r}: choose from {list(CLIP_PREPROCESS)}")
        prepare, out = CLIP_PREPROCESS[preprocess], []
        t = frames_to_tensor(frames)
        for i in range(0, len(t), self.batch_size):
            x = prepare(t[i : i + self.batch_size], self.size, self.mean, self.std)
            out.append(F.normalize(self.model.encode_image(x.to(self.device)).float(), dim=-1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def texts(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu()


class DinoEncoder:
    """A DINO-family ViT from a local transformers folder (ViTModel for DINO v1, Dinov2Model for DINOv2);
    the feature is the CLS token of the last hidden state. Input: short side to size*256/224, centre crop
    `size` (the model config's image size unless given), ImageNet normalisation."""

    def __init__(self, path: Path, *, size: int | None = None, device: str = "cpu", batch_size: int = 32):
        from transformers import AutoModel

        _require(path, "DINO model")
        try:
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        except (OSError, ValueError) as err:
            raise BygError(f"DINO model {path}: cannot load it with transformers ({err})") from err
        self.size = int(size or getattr(self.model.config, "image_size", 224))
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def cls(self, frames: np.ndarray) -> torch.Tensor:
        out = []
        t = frames_to_tensor(frames)
        for i in range(0, len(t), self.batch_size):
            x = resize_crop_normalize(t[i : i + self.batch_size], round(self.size * 256 / 224), self.size,
                                      IMAGENET_MEAN, IMAGENET_STD)
            hidden = self.model(pixel_values=x.to(self.device)).last_hidden_state
            out.append(hidden[:, 0].float().cpu())
        return torch.cat(out)


class FlowEstimator:
    """torchvision RAFT (large by default, as VBench) from a local state_dict, run like VBench: inputs
    mapped from 0..255 to [-1, 1], padded to a multiple of 8 (split evenly, "sintel" mode), 20 updates."""

    def __init__(self, path: Path, *, variant: str = "large", device: str = "cpu", iters: int = 20,
                 batch_size: int = 4):
        from torchvision.models.optical_flow import raft_large, raft_small

        _require(path, "RAFT weights")
        builders = {"large": raft_large, "small": raft_small}
        if variant not in builders:
            raise BygError(f"RAFT variant {variant!r}: choose 'large' or 'small'")
        model = builders[variant](weights=None)
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise BygError(f"RAFT weights {path} do not fit torchvision's raft_{variant} "
                           f"(convert the original raft-things.pth, or use Raft_Large_Weights.C_T_V1): {err}") from err
        self.model = model.to(device).eval()
        self.device, self.iters, self.batch_size = device, iters, batch_size

    @torch.no_grad()
    def pair_flows(self, frames: np.ndarray) -> torch.Tensor:
        """Forward flow between consecutive frames: (T-1, 2, H+pad, W+pad), in pixels."""
        t = frames_to_tensor(frames).float() / 127.5 - 1.0
        h, w = t.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        if h + ph < 128 or w + pw < 128:
            raise BygError(f"RAFT needs frames of at least 128x128 pixels, got {w}x{h}")
        t = F.pad(t, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2], mode="replicate")
        flows = []
        for i in range(0, len(t) - 1, self.batch_size):
            a = t[i : min(i + self.batch_size, len(t) - 1)].to(self.device)
            b = t[i + 1 : min(i + 1 + self.batch_size, len(t))].to(self.device)
            flows.append(self.model(a, b, num_flow_updates=self.iters)[-1].float().cpu())
        return torch.cat(flows)


def load_aesthetic_head(path: Path, embed_dim: int) -> torch.nn.Linear:
    """The LAION aesthetic predictor's linear layer (sa_0_4_vit_l_14_linear.pth: weight (1, 768), bias (1,))."""
    _require(path, "aesthetic head")
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    weight = state.get("weight")
    if weight is None or weight.ndim != 2 or weight.shape[0] != 1:
        raise BygError(f"aesthetic head {path}: expected a linear layer state_dict with weight (1, D) and bias (1,)")
    if weight.shape[1] != embed_dim:
        raise BygError(f"aesthetic head {path} expects {weight.shape[1]}-d embeddings but the CLIP model gives "
                       f"{embed_dim}-d (VBench uses CLIP ViT-L/14, 768-d)")
    head = torch.nn.Linear(embed_dim, 1)
    head.load_state_dict(state)
    return head.eval()
