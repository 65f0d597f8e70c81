"""Video files <-> tensors, and video edit records for training.

Reading uses PyAV (FFmpeg's libraries): it reads every measured clip exactly, is maintained and is already a
dependency. decord, the usual choice, does not: decord 0.6.0, eva-decord 0.6.1 and the maintained fork decord2
3.4.0 return narrow clips' frames with extra channels and wrong values (48 px wide in all three, the shapes world's
32 px in decord2) and their `get_batch` raises there; at other widths they equal PyAV's frames bit for bit
(docs/video_readers.md, measured with examples/experiments/video_readers.py).
Writing uses imageio with its FFmpeg plugin (imageio-ffmpeg): H.264, yuv420p, at the source's frame rate.

Tensors are (3, F, H, W) floats in [-1, 1] (a batch adds B in front), the Wan VAE's layout.
Frame counts: Wan's VAE compresses time 4x after the first frame, so a clip the model sees has 4k+1 frames.
`edit_plan` says how a source's frames map onto such a clip and back (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from byg_cli.data.images import center_crop_resize
from byg_cli.data.records import TEXT_FIELDS, read_records
from byg_cli.errors import BygError
from byg_cli.extras import require

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif")


def is_video_file(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Video:
    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: Fraction

    @property
    def count(self) -> int:
        return int(self.frames.shape[0])


def _open(path: Path):
    av = require("av", "video", "reading a video file")

    if not Path(path).is_file():
        raise BygError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise BygError(f"{path}: cannot read video ({err})") from None
    if not container.streams.video:
        container.close()
        raise BygError(f"{path}: has no video stream")
    return container


def read_video(path: Path, indices: Optional[Sequence[int]] = None) -> Video:
    """Decode a video's frames as RGB; with `indices`, only those frames (in that order, repeats allowed;
    indices past the end hold the last frame). Decoding stops after the last frame needed."""
    av = require("av", "video", "reading a video file")

    container = _open(path)
    stream = container.streams.video[0]
    fps = Fraction(stream.average_rate or stream.guessed_rate or 0)
    wanted = None if indices is None else set(int(i) for i in indices)
    last = None if indices is None else max(indices)
    kept: dict[int, np.ndarray] = {}
    n, final = 0, None
    try:
        for frame in container.decode(stream):
            final = frame
            if wanted is None or n in wanted:
                kept[n] = frame.to_ndarray(format="rgb24")
            n += 1
            if last is not None and n > last:
                break
    except av.error.FFmpegError as err:
        raise BygError(f"{path}: cannot decode video ({err})") from None
    finally:
        container.close()
    if n == 0:
        raise BygError(f"{path}: contains no frames")
    if fps <= 0:
        raise BygError(f"{path}: has no frame rate")
    if indices is None:
        return Video(np.stack([kept[i] for i in range(n)]), fps)
    held = kept[n - 1] if n - 1 in kept else final.to_ndarray(format="rgb24")
    return Video(np.stack([kept[int(i)] if int(i) < n else held for i in indices]), fps)


def clip_indices(source_fps: float, frames: int, fps: Optional[float] = None, start: int = 0) -> list[int]:
    """Source frame indices of a training clip: `frames` consecutive frames, or sampled at `fps`."""
    step = 1.0 if fps is None else float(source_fps) / float(fps)
    return [start + int(round(k * step)) for k in range(frames)]


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop and resize every frame to width x height (the model's grid)."""
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(center_crop_resize(Image.fromarray(f), width, height)) for f in frames])


def to_video_tensor(frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (3, F, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(3, 0, 1, 2) / 127.5 - 1.0


def from_video_tensor(video: torch.Tensor) -> np.ndarray:
    """(3, F, H, W) in [-1, 1] -> (F, H, W, 3) uint8."""
    arr = ((video.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte()
    return arr.permute(1, 2, 3, 0).cpu().numpy()


def write_video(path: Path, frames: np.ndarray, fps: Fraction | float, lossless: bool = False) -> Path:
    """H.264 through imageio-ffmpeg, at `fps`: yuv420p (plays everywhere; sides must be even, the model's grid
    always is), or with `lossless` RGB H.264 at CRF 0 (libx264rgb), which decodes back to the exact pixels
    (the shapes world's clips, read by an exact reader)."""
    imageio = require("imageio.v2", "video", "writing a video file")
    require("imageio_ffmpeg", "video", "writing a video file")  # imageio's FFMPEG format

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not lossless and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ValueError(f"yuv420p H.264 needs even frame sides, got {frames.shape[2]}x{frames.shape[1]}")
    codec = dict(codec="libx264rgb", pixelformat="rgb24", output_params=["-crf", "0"]) if lossless else \
        dict(codec="libx264", pixelformat="yuv420p")
    writer = imageio.get_writer(str(path), fps=float(fps), macro_block_size=1, ffmpeg_log_level="error",
                                format="FFMPEG", **codec)
    try:
        for frame in frames:
            writer.append_data(np.ascontiguousarray(frame))
    finally:
        writer.close()
    return path


def model_frame_count(n: int, max_frames: int) -> int:
    """The 4k+1 clip length used for a source of n frames: the smallest 4k+1 >= n, at most max_frames."""
    return min(max_frames, ((max(n, 1) - 1 + 3) // 4) * 4 + 1)


def edit_plan(n: int, max_frames: int) -> tuple[list[int], list[int]]:
    """How an n-frame source is edited as one 4k+1-frame clip, and how the output gets its n frames back.

    Returns (clip, back): the clip is made of source frames `clip`; output frame i is clip frame `back[i]`.
    - n <= max_frames: the clip is the source's frames with the last one held until the length is 4k+1; the
      held frames are dropped after decoding, so every output frame is the edit of the same source frame.
    - n > max_frames: the clip samples max_frames source frames evenly over the whole video; each output frame
      takes the nearest edited frame in time (frames are held), so the output still has n frames.
    Either way the output is written at the source's fps, so it keeps the source's length and timing.
    """
    if n < 1:
        raise ValueError("a video needs at least one frame")
    count = model_frame_count(n, max_frames)
    if n <= count:
        return list(range(n)) + [n - 1] * (count - n), list(range(n))
    clip = [int(round(i * (n - 1) / (count - 1))) for i in range(count)]
    back = [int(round(i * (count - 1) / (n - 1))) for i in range(n)]
    return clip, back


class VideoEditDataset(Dataset):
    """Edit records whose media is a video ("video" key). Each item has the record's texts and "pixels"
    (3, frames, height, width): a clip from the start of the video (consecutive frames, or sampled at `fps`),
    centre-cropped and resized; a "target_video" extra key gives "target_pixels" the same way."""

    def __init__(self, records_path: Path, height: int, width: int, frames: int, fps: Optional[float] = None):
        self.path = Path(records_path)
        self.root = self.path.parent
        self.height, self.width, self.frames, self.fps = height, width, frames, fps
        self.records = read_records(self.path)
        if not self.records:
            raise BygError(f"{self.path}: contains no records")
        images = [r.media for r in self.records if r.media_kind != "video"]
        if images:
            raise BygError(f"{self.path}: VideoEditDataset reads video records; found image record(s) e.g. "
                           f"{images[0]}")

    def __len__(self) -> int:
        return len(self.records)

    def _clip(self, path: Path) -> torch.Tensor:
        fps = None
        if self.fps is not None:
            container = _open(path)
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate)
            container.close()
        indices = clip_indices(fps or 1.0, self.frames, self.fps)
        video = read_video(path, indices)
        return to_video_tensor(fit_frames(video.frames, self.width, self.height))

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        item: dict[str, Any] = {k: getattr(rec, k) for k in TEXT_FIELDS}
        item["pixels"] = self._clip(rec.media_path(self.root))
        target = rec.extra.get("target_video")
        if target:
            item["target_pixels"] = self._clip(Path(target) if Path(target).is_absolute() else self.root / target)
        return item
