"""Exact scores of video shapes-world edits, from frames read by the analytic reader.

Per clip (`score_video_edit`), for every frame k, the image scorer `score_edit` against the clip's true
attributes at frame k:
- edit success per frame: the style reads back as asked;
- preservation per frame: colour, shape type and background unchanged, the shape where the source's is (centre
  within `centre_tol` px) and covering the same region (IoU);
- centre trajectory: the distance (px) between the output's read-back centre and the source's true centre at
  each frame (motion preserved); a frame with no shape read counts as lost;
- flicker: the mean absolute change (0-255 levels, max over RGB) between consecutive output frames over the
  pixels that should not change between them (outside both frames' shape regions, dilated by one pixel); 0 for
  a perfect edit, whatever the motion.
`summarize_video_edits` averages over frames and clips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import numpy as np
from scipy import ndimage

from byg_cli.data.shapes import silhouette_mask
from byg_cli.data.shapes_reader import to_uint8_image
from byg_cli.data.shapes_video import MOTIONS, ShapeClip
from byg_cli.eval.shapes_metrics import score_edit


@dataclass
class VideoEditScore:
    success: list[bool]
    preserved: list[bool]
    pixel_agreement: list[float]
    centre_error_px: list[Optional[float]]  # None: no shape read in that frame
    flicker: float

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success))

    @property
    def mean_centre_error(self) -> Optional[float]:
        found = [e for e in self.centre_error_px if e is not None]
        return float(np.mean(found)) if found else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "success_rate": self.success_rate, "mean_centre_error": self.mean_centre_error}


def _frames(video: Any) -> list[np.ndarray]:
    """(F, H, W, 3) uint8, or a tensor (3, F, H, W) in [-1, 1], as a list of uint8 frames."""
    if hasattr(video, "detach") and video.dim() == 4 and video.shape[0] == 3:
        return [to_uint8_image(video[:, k]) for k in range(video.shape[1])]
    return [to_uint8_image(f) for f in video]


def flicker(output: Sequence[np.ndarray], clip: ShapeClip, target: Optional[ShapeClip] = None) -> float:
    """Mean absolute frame-to-frame change (0-255) over pixels that should stay put between the two frames."""
    size = output[0].shape[0]
    changes = []
    for k in range(1, len(output)):
        moving = np.zeros((size, size), dtype=bool)
        for c in (clip, target) if target is not None else (clip,):
            moving |= silhouette_mask(c.at(k - 1), size) | silhouette_mask(c.at(k), size)
        still = ~ndimage.binary_dilation(moving, iterations=1)
        if not still.any():
            continue
        diff = np.abs(output[k].astype(np.int16) - output[k - 1].astype(np.int16)).max(axis=-1)
        changes.append(float(diff[still].mean()))
    return float(np.mean(changes)) if changes else 0.0


def score_video_edit(source: ShapeClip, target: ShapeClip, source_video: Any, output_video: Any,
                     edit_type: str = "style", centre_tol: float = 2.0, pixel_tol: int = 32) -> VideoEditScore:
    src_frames, out_frames = _frames(source_video), _frames(output_video)
    if len(src_frames) != source.frames or len(out_frames) != source.frames:
        raise ValueError(f"the clip has {source.frames} frames; got {len(src_frames)} source and "
                         f"{len(out_frames)} output frames")
    per_frame = [score_edit(source.at(k), edit_type, target.at(k), src_frames[k], out_frames[k],
                            centre_tol=centre_tol, pixel_tol=pixel_tol) for k in range(source.frames)]
    return VideoEditScore(
        success=[s.success for s in per_frame],
        preserved=[s.preserved for s in per_frame],
        pixel_agreement=[s.pixel_agreement for s in per_frame],
        centre_error_px=[s.measured.get("moved_px") for s in per_frame],
        flicker=flicker(out_frames, source, target),
    )


def summarize_video_edits(scores: Sequence[VideoEditScore]) -> dict[str, Any]:
    """Averages over every frame of every clip, plus whole-clip success and the lost-shape fraction."""
    frames = [e for s in scores for e in s.centre_error_px]
    found = [e for e in frames if e is not None]
    return {
        "clips": len(scores),
        "frames": len(frames),
        "success_per_frame": float(np.mean([x for s in scores for x in s.success])),
        "clip_success": float(np.mean([all(s.success) for s in scores])),
        "preservation_per_frame": float(np.mean([x for s in scores for x in s.preserved])),
        "pixel_agreement": float(np.mean([x for s in scores for x in s.pixel_agreement])),
        "centre_error_px": float(np.mean(found)) if found else None,
        "shape_lost_fraction": 1.0 - len(found) / len(frames) if frames else 0.0,
        "flicker": float(np.mean([s.flicker for s in scores])),
    }


# ------------------------------------------------------------------------------------------ the text-to-video base


def moves_as_captioned(centres: Sequence[Optional[tuple[float, float]]], direction: str, min_step: float = 0.5,
                       max_drift: float = 0.5) -> bool:
    """Whether a generated clip's read-back centres (None: no shape in that frame) travel the caption's way: a
    mean step of at least `min_step` px per frame along the direction, and at most `max_drift` px per frame
    across it. A frame without a shape fails the clip."""
    if len(centres) < 2 or any(c is None for c in centres):
        return False
    steps = np.diff(np.asarray(centres, dtype=np.float64), axis=0)
    along = np.asarray(MOTIONS[direction], dtype=np.float64)
    across = np.array([-along[1], along[0]])
    return float((steps @ along).mean()) >= min_step and abs(float((steps @ across).mean())) <= max_drift


def summarize_video_base(per_frame: dict[str, Any], clips: Sequence[ShapeClip]) -> dict[str, Any]:
    """Clip-level scores of a text-to-video base from `score_t2i` over all frames (clip after clip, in order):
    per-frame accuracy (as read by `score_t2i`), `steady` (shape, colour, style and background read the same in
    every frame) and `moves` (`moves_as_captioned`)."""
    samples = per_frame["samples"]
    if not clips or len(samples) % len(clips):
        raise ValueError(f"{len(samples)} frames do not split into {len(clips)} clips")
    n = len(samples) // len(clips)
    steady, moves = [], []
    for i, clip in enumerate(clips):
        reads = [s["read"] for s in samples[i * n:(i + 1) * n]]
        keys = {(r["shape"], r["color"], r["style"], r["background"]) for r in reads}
        steady.append(len(keys) == 1 and reads[0]["shape"] is not None)
        centres = [(r["cx"], r["cy"]) if r["shape"] is not None else None for r in reads]
        moves.append(moves_as_captioned(centres, clip.direction))
    return {"clips": len(clips), "frames": len(samples), "per_frame": per_frame["accuracy"],
            "steady": float(np.mean(steady)), "moves_as_captioned": float(np.mean(moves)),
            "per_clip": [{"steady": s, "moves": m} for s, m in zip(steady, moves)]}
