"""Reading videos for the video metrics: a video file (decoded with PyAV) or a folder of frame images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image

from byg_cli.errors import BygError
from byg_cli.extras import require

VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif"}
FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
FOLDER_FPS = 8.0  # VBench's assumption for frame folders


@dataclass
class Video:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: float
    path: Path

    def subsampled_for_motion(self) -> np.ndarray:
        """VBench's dynamic-degree sampling: every round(fps/8)-th frame (about 8 fps) of a video file;
        frame folders are used as they are."""
        if self.path.is_dir():
            return self.frames
        return self.frames[:: max(1, round(self.fps / 8))]


def list_videos(folder: Path) -> dict[str, Path]:
    """Video id (file stem or sub-folder name) -> path."""
    if not folder.is_dir():
        raise BygError(f"{folder}: not a folder of videos")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or \
                (p.is_dir() and any(q.suffix.lower() in FRAME_SUFFIXES for q in p.iterdir())):
            if p.stem in out:
                raise BygError(f"{folder}: two videos share the id {p.stem!r} ({out[p.stem].name}, {p.name})")
            out[p.stem] = p
    return out


def read_video(path: Path) -> Video:
    if path.is_dir():
        files = sorted(q for q in path.iterdir() if q.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise BygError(f"{path}: no frame images in the folder")
        frames = []
        for f in files:
            with PIL.Image.open(f) as im:
                frames.append(np.asarray(im.convert("RGB")))
        if len({fr.shape for fr in frames}) != 1:
            raise BygError(f"{path}: frames differ in size")
        return Video(np.stack(frames), FOLDER_FPS, path)
    av = require("av", "video", "reading a video file")  # PyAV: bundled FFmpeg

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or FOLDER_FPS)
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except (av.error.FFmpegError, IndexError) as err:
        raise BygError(f"{path}: cannot decode video ({err})") from err
    if not frames:
        raise BygError(f"{path}: video has no frames")
    return Video(np.stack(frames), fps, path)


def write_video(path: Path, frames: np.ndarray, fps: int = 8) -> Path:
    """Lossless-enough mp4 writer (used for fixtures and by callers that need a file)."""
    av = require("av", "video", "writing a video file")

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
