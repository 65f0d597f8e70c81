"""The video metrics of the paper's Table 1 as pure functions on frames, embeddings and flow fields.

- CLIP directional similarity (InstructPix2Pix): cos(E_I(edit) - E_I(src), E_T(tgt) - E_T(src)), every
  embedding L2-normalised first, per frame (source frame t against edited frame t), then the frame mean. Frames
  are squashed whole to the CLIP size as InstructPix2Pix's `ClipSimilarity` does (`--clip-preprocess crop`:
  short side and centre crop).
- DINO per-frame similarity: mean over t of cos(CLS(src_t), CLS(edit_t)).
- VBench temporal flickering: per consecutive pair the mean absolute pixel difference; (255 - mean)/255.
  VBench defines it for static-camera clips only (its `static_filter` keeps the videos RAFT finds static);
  byg scores every clip, where camera or subject motion lowers it too.
- VBench dynamic degree: per pair the mean of the top 5 % optical-flow magnitudes; a video is dynamic when
  at least round(4 T / 16) pairs exceed 6 * max(1, 8/fps) * min(H, W) / 256, and never with a single sampled
  frame (no pair), as VBench's `check_move`.
- VBench aesthetic quality: the LAION linear head on L2-normalised CLIP ViT-L/14 image embeddings, / 10,
  mean over frames (frames resized as VBench's `clip_transform`: see `video_models.vbench_clip_normalize`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=-1)


def directional_similarity(img_src: torch.Tensor, img_edit: torch.Tensor, txt_src: torch.Tensor,
                           txt_tgt: torch.Tensor) -> torch.Tensor:
    """Per-row directional similarity. Image embeddings (N, D); text embeddings (D,) or (N, D)."""
    image_dir = _unit(img_edit) - _unit(img_src)
    text_dir = _unit(txt_tgt) - _unit(txt_src)
    return F.cosine_similarity(image_dir, text_dir.expand_as(image_dir), dim=-1)


def per_frame_cosine(src: torch.Tensor, edit: torch.Tensor) -> torch.Tensor:
    """cos(src_t, edit_t) for each frame t; features (T, D)."""
    return F.cosine_similarity(src.float(), edit.float(), dim=-1)


def temporal_flickering(frames: np.ndarray) -> float:
    """VBench temporal flickering of one video: frames (T, H, W, C) uint8. VBench defines it for static-camera
    clips only; on a moving camera it measures the motion as well."""
    if len(frames) < 2:
        raise ValueError("temporal flickering needs at least two frames")
    f = frames.astype(np.float32)
    pair_means = np.abs(f[1:] - f[:-1]).reshape(len(f) - 1, -1).mean(axis=1)
    return float((255.0 - pair_means.mean()) / 255.0)


def top_fraction_mean(flow: torch.Tensor, fraction: float = 0.05) -> float:
    """Mean of the largest `fraction` of flow magnitudes sqrt(u^2 + v^2); flow (2, H, W)."""
    magnitude = torch.sqrt(flow[0].float() ** 2 + flow[1].float() ** 2).flatten()
    k = int(magnitude.numel() * fraction)
    if k == 0:
        return 0.0
    return float(torch.topk(magnitude, k).values.mean())


def dynamic_thresholds(height: int, width: int, n_frames: int, fps: float) -> tuple[float, int]:
    """(magnitude threshold, number of pairs that must exceed it), from the frame size, the number of
    sampled frames and the frame rate, as VBench sets them."""
    factor = max(1.0, 8.0 / fps)
    return factor * 6.0 * min(height, width) / 256.0, round(4 * n_frames / 16.0)


def is_dynamic(pair_scores: list[float], height: int, width: int, n_frames: int, fps: float) -> bool:
    """VBench's `check_move`: dynamic once `needed` pairs exceed the threshold. It answers inside its loop over
    the pairs, so no pair (a single sampled frame) is never dynamic, even when `needed` rounds to 0."""
    threshold, needed = dynamic_thresholds(height, width, n_frames, fps)
    return bool(pair_scores) and sum(1 for s in pair_scores if s > threshold) >= needed


def aesthetic_scores(unit_embeddings: torch.Tensor, head: torch.nn.Linear) -> torch.Tensor:
    """Per-frame aesthetic quality in VBench's 0..1 scale; embeddings are L2-normalised (T, D)."""
    return head(unit_embeddings.float()).squeeze(-1) / 10.0


def finite_mean(values: torch.Tensor) -> float:
    v = float(values.float().mean())
    return v if math.isfinite(v) else float("nan")
