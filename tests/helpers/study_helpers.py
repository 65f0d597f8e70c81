"""Shared helpers for the user-study tests: tiny generated media, a built study, a real uvicorn server."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import uvicorn
from PIL import Image

from byg_cli.study.build import BuildResult, build_study
from byg_cli.study.server import create_app

METHODS = ("ours", "baseline")


def write_png(path: Path, color: tuple[int, int, int], size: int = 16) -> None:
    Image.new("RGB", (size, size), color).save(path)


def write_mp4(path: Path, color: tuple[int, int, int], frames: int = 48, fps: int = 24) -> None:
    """A tiny H.264 clip whose brightness ramps, so playback position is visible (imageio + imageio-ffmpeg)."""
    import numpy as np
    import pytest

    pytest.importorskip("imageio_ffmpeg", reason="video media need the 'video' extra")
    import imageio.v2 as imageio

    with imageio.get_writer(path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=16,
                            ffmpeg_log_level="error") as writer:
        for t in range(frames):
            frame = np.zeros((32, 32, 3), dtype=np.uint8)
            frame[:] = color
            frame[:, : 1 + t * 31 // frames] = 255
            writer.append_data(frame)


def make_study(
    root: Path,
    *,
    items: int = 6,
    raters: int = 3,
    per_rater: int | None = None,
    kind: str = "image",
    conditions: tuple[str, ...] = ("cartoon", "photoreal"),
    seed: int = 0,
) -> BuildResult:
    """Sources, two methods' outputs and an instructions file under `root`, built into `root/study.db`."""
    src, ours, base = root / "sources", root / METHODS[0], root / METHODS[1]
    for d in (src, ours, base):
        d.mkdir(parents=True, exist_ok=True)
    rows = []
    clip = None
    for i in range(items):
        stem = f"item{i:02d}"
        if kind == "image":
            write_png(src / f"{stem}.png", (10 * i, 0, 0))
            write_png(ours / f"{stem}.png", (0, 10 * i, 0))
            write_png(base / f"{stem}.jpg", (0, 0, 10 * i))
        else:
            if clip is None:  # one encode, copied: keeps the tests fast
                clip = root / "clip.mp4"
                write_mp4(clip, (40, 80, 120))
            for d in (src, ours, base):
                (d / f"{stem}.mp4").write_bytes(clip.read_bytes())
        rows.append({"item": stem, "instruction": f"Turn item {i} into a cartoon",
                     "condition": conditions[i % len(conditions)]})
    instructions = root / "instructions.jsonl"
    instructions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return build_study(
        methods=[f"{METHODS[0]}={ours}", f"{METHODS[1]}={base}"], sources=src, instructions=instructions,
        output=root / "study.db", raters=raters, per_rater=per_rater, seed=seed,
    )


@contextlib.contextmanager
def running_server(db_path: Path):
    """A real uvicorn server for the study on 127.0.0.1 and a free port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(db_path), log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("study server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
