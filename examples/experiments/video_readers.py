"""Which video readers decode byg's clips frame-exactly (issue 21; the measured table is docs/video_readers.md).

    python examples/experiments/video_readers.py [PYTHON ...]

Makes clips in a temp folder: lossless ones (the video shapes world through byg's own writer, RGB H.264 at CRF 0;
noise at an odd size; FFV1) and H.264 yuv420p ones of several sizes, frame counts and frame rates (byg's writer,
plus one with a keyframe every 8 frames and B-frames). Then for each reader x clip:
- len: does the reader's frame count equal the clip's?
- seq: every frame, read in order, equal to the reference (the pixels written, for a lossless clip; PyAV's decode
  of the same bitstream, for H.264)?
- seek: frame k, read by index in shuffled order (each read a seek), equal to reference frame k?
- batch: the same shuffled indices in one batch call (decord's `get_batch`).
Then a width sweep: at which widths (16 rows, lossless) is a reader's frame not the pixels written?
A cell is "exact" or says how many frames were bit-equal, how many were at least the right frame (nearest
reference frame is k) and the largest difference in levels; a reader that raises shows the error.

Readers: PyAV through byg's `read_video` (the reference for H.264, so its H.264 rows check only itself against
seeking), imageio-ffmpeg (the FFmpeg command line), and decord. decord 0.6.0, its fork decord2 and eva-decord
all install as the module `decord`, so each needs its own environment: every PYTHON given is an interpreter
whose decord is measured as well (it needs only numpy and decord there). A reader that does not import is
skipped with a note. Run it from the repository root with byg's environment (the clips are made with byg).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# -- measuring (also runs in a decord-only interpreter: numpy and the standard library only) ---------------------

def compare(frames: list[np.ndarray], indices: list[int], ref: np.ndarray) -> str:
    """'exact', or 'e/n exact, r/n right frame, max d' for frames that should be ref[indices]. Frames with extra
    channels are named so and their first three channels compared."""
    exact = right = worst = 0
    coarse = ref[:, ::4, ::4].astype(np.int16)  # for finding the nearest reference frame of a frame that differs
    shapes = {np.shape(frame) for frame in frames}
    if shapes != {ref.shape[1:]}:
        if not all(len(s) == 3 and s[:2] == ref.shape[1:3] and s[2] > 3 for s in shapes):
            return f"shape {sorted(shapes)} != {ref.shape[1:]}"
        return f"{shapes.pop()[2]} channels; first 3: " + compare([f[..., :3] for f in frames], indices, ref)
    for frame, k in zip(frames, indices):
        frame = np.asarray(frame)
        diff = int(np.abs(frame.astype(np.int16) - ref[k].astype(np.int16)).max())
        worst, exact = max(worst, diff), exact + (diff == 0)
        if diff == 0:
            right += 1
        else:
            dist = np.abs(coarse - frame[::4, ::4].astype(np.int16)).reshape(len(ref), -1).mean(axis=1)
            right += int(int(np.argmin(dist)) == k)
    n = len(indices)
    return "exact" if exact == n else f"{exact}/{n} exact, {right}/{n} right frame, max {worst}"


def shuffled(n: int) -> list[int]:
    """Every index once in a fixed shuffled order, with backward jumps and the last frame early."""
    order = [int(i) for i in np.random.default_rng(21).permutation(n)]
    order.remove(n - 1)
    return [n - 1, *order]


def failure(err: Exception) -> str:
    return f"error: {type(err).__name__}: {' '.join(str(err).split())[-90:]}"


def measure(reader, clips: list[dict], folder: Path) -> list[dict]:
    """One row per clip: len, seq, seek and batch cells (see the module docstring)."""
    rows = []
    for clip in clips:
        path, ref = str(folder / clip["file"]), np.load(folder / clip["ref"])
        n, order = len(ref), shuffled(len(ref))
        row = {"clip": clip["name"]}
        try:
            got = reader.count(path)
            row["len"] = "ok" if got == n else f"{got} (not {n})"
        except Exception as err:  # a reader's failure is a measurement
            row["len"] = failure(err)
        for cell, read, indices in (("seq", reader.seq, list(range(n))), ("seek", reader.seek, order),
                                    ("batch", reader.batch, order)):
            if read is None:
                row[cell] = "n/a"
                continue
            try:
                row[cell] = compare(read(path, indices), indices, ref)
            except Exception as err:
                row[cell] = failure(err)
        rows.append(row)
    return rows


SWEEP_WIDTHS = [*range(2, 257, 2), *range(264, 1281, 8), 1920]


def sweep(reader, folder: Path) -> list[int]:
    """Widths (of SWEEP_WIDTHS, 16 rows, lossless) at which the reader's frame 1 is not the pixels written."""
    refs = np.load(folder / "widths.npz")
    bad = []
    for width in SWEEP_WIDTHS:
        try:
            ok = compare(reader.seek(str(folder / f"w{width}.mp4"), [1]), [1], refs[str(width)]) == "exact"
        except Exception:
            ok = False
        if not ok:
            bad.append(width)
    return bad


class Decord:
    """decord's VideoReader on the CPU: `next()` in order, `vr[k]` (a seek), `get_batch`."""

    def __init__(self):
        import decord

        self.decord, self.name = decord, decord_label()

    def open(self, path: str):
        return self.decord.VideoReader(path, ctx=self.decord.cpu(0))

    def count(self, path: str) -> int:
        return len(self.open(path))

    def seq(self, path: str, indices: list[int]) -> list[np.ndarray]:
        reader = self.open(path)
        return [reader.next().asnumpy() for _ in indices]

    def seek(self, path: str, indices: list[int]) -> list[np.ndarray]:
        reader = self.open(path)
        return [reader[k].asnumpy() for k in indices]

    def batch(self, path: str, indices: list[int]) -> list[np.ndarray]:
        return list(self.open(path).get_batch(indices).asnumpy())


def decord_label() -> str:
    from importlib import metadata

    for dist in ("decord2", "eva-decord", "decord"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return "decord (unknown distribution)"


def worker(folder: Path) -> None:
    """`--worker FOLDER`: measure this interpreter's decord on the clips in FOLDER; one JSON object out."""
    try:
        reader = Decord()
    except Exception as err:
        print(json.dumps({"reader": f"decord in {sys.executable}", "skipped": f"does not import ({err})"}))
        return
    clips = json.loads((folder / "clips.json").read_text())
    print(json.dumps({"reader": reader.name, "python": platform.python_version(), "numpy": np.__version__,
                      "rows": measure(reader, clips, folder), "bad_widths": sweep(reader, folder)}))


# -- making the clips and measuring byg's own readers (byg's environment) ----------------------------------------

def moving_pattern(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """A drifting colour gradient with a textured block crossing it: every frame differs from its neighbours."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.integers(0, 256, (max(4, height // 3), max(4, width // 3), 3), dtype=np.uint8)
    out = np.empty((frames, height, width, 3), np.uint8)
    for k in range(frames):
        out[k, ..., 0] = (128 + 100 * np.sin((x + 2 * k) / max(width, 8) * 6.3)).astype(np.uint8)
        out[k, ..., 1] = (128 + 100 * np.cos((y - k) / max(height, 8) * 6.3)).astype(np.uint8)
        out[k, ..., 2] = ((x + y + 3 * k) % 256).astype(np.uint8)
        th, tw = texture.shape[:2]
        x0 = round(k * (width - tw) / max(frames - 1, 1))
        y0 = (height - th) // 2
        out[k, y0:y0 + th, x0:x0 + tw] = texture
    return out


def noise_clip(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


def write_ffv1(path: Path, frames: np.ndarray, fps: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_h264_short_gop(path: Path, frames: np.ndarray, fps: int) -> None:
    """yuv420p H.264 with a keyframe every 8 frames and up to 3 B-frames (seeks land between keyframes)."""
    import imageio.v2 as imageio

    writer = imageio.get_writer(str(path), fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1,
                                ffmpeg_log_level="error", format="FFMPEG",
                                output_params=["-g", "8", "-bf", "3", "-sc_threshold", "0"])
    for frame in frames:
        writer.append_data(frame)
    writer.close()


def make_clips(folder: Path) -> list[dict]:
    from byg_cli.data.shapes_video import render_clip, style_edit_for_index
    from byg_cli.data.video import read_video, write_video

    clips = []

    def add(name: str, kind: str, pixels: np.ndarray, write, fps, suffix: str = ".mp4") -> None:
        file = f"{len(clips):02d}{suffix}"
        write(folder / file, pixels, fps)
        ref = pixels if kind == "lossless" else read_video(folder / file).frames
        np.save(folder / f"{file}.npy", ref)
        clips.append({"name": name, "kind": kind, "file": file, "ref": f"{file}.npy"})

    lossless = lambda p, a, fps: write_video(p, a, fps, lossless=True)
    shapes = lambda frames, size: render_clip(style_edit_for_index(0, 3, frames, size).source, size)
    add("shapes 32x32, 9 f, 8 fps", "lossless", shapes(9, 32), lossless, 8)
    add("shapes 64x64, 33 f, 16 fps", "lossless", shapes(33, 64), lossless, 16)
    add("noise 125x75 (odd), 33 f, 24 fps", "lossless", noise_clip(33, 75, 125, 1), lossless, 24)
    add("noise 70x50 FFV1 .mkv, 17 f, 10 fps", "lossless", noise_clip(17, 50, 70, 2), write_ffv1, 10, ".mkv")
    h264 = lambda p, a, fps: write_video(p, a, fps)
    add("48x32, 33 f, 29.97 fps", "h264", moving_pattern(33, 32, 48, 3), h264, 30000 / 1001)
    add("64x64, 33 f, 8 fps", "h264", moving_pattern(33, 64, 64, 4), h264, 8)
    add("150x100, 81 f, 16 fps", "h264", moving_pattern(81, 100, 150, 5), h264, 16)
    add("126x66, 33 f, 25 fps", "h264", moving_pattern(33, 66, 126, 6), h264, 25)
    add("832x480, 81 f, 16 fps", "h264", moving_pattern(81, 480, 832, 7), h264, 16)
    add("832x480, 33 f, 24 fps, GOP 8 + B", "h264", moving_pattern(33, 480, 832, 8), write_h264_short_gop, 24)
    (folder / "clips.json").write_text(json.dumps(clips))
    refs = {}
    for width in SWEEP_WIDTHS:
        refs[str(width)] = noise_clip(2, 16, width, width)
        write_video(folder / f"w{width}.mp4", refs[str(width)], 8, lossless=True)
    np.savez(folder / "widths.npz", **refs)
    return clips


class PyAV:
    """byg's `read_video`: it decodes from the start, so a "seek" is `read_video(path, indices)`. Its count is the
    container's stored frame count (byg itself counts by decoding; Matroska stores none)."""

    batch = None

    def __init__(self):
        from byg_cli.data.video import read_video

        self.read_video, self.name = read_video, "PyAV (byg read_video)"

    def count(self, path: str) -> int:
        import av

        with av.open(path) as container:
            return container.streams.video[0].frames

    def seq(self, path: str, indices: list[int]) -> list[np.ndarray]:
        return list(self.read_video(Path(path)).frames)

    def seek(self, path: str, indices: list[int]) -> list[np.ndarray]:
        return list(self.read_video(Path(path), indices).frames)


class ImageioFFmpeg:
    """imageio's FFMPEG plugin (frames piped from the ffmpeg command line); `get_data(k)` seeks."""

    batch = None

    def __init__(self):
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401

        self.imageio, self.name = imageio, "imageio-ffmpeg"

    def count(self, path: str) -> int:
        with self.imageio.get_reader(path, format="FFMPEG") as reader:
            return reader.count_frames()

    def seq(self, path: str, indices: list[int]) -> list[np.ndarray]:
        with self.imageio.get_reader(path, format="FFMPEG") as reader:
            return [frame for _, frame in zip(indices, reader)]

    def seek(self, path: str, indices: list[int]) -> list[np.ndarray]:
        with self.imageio.get_reader(path, format="FFMPEG") as reader:
            return [reader.get_data(k) for k in indices]


def versions() -> str:
    import av
    import imageio
    import imageio_ffmpeg

    ffmpeg = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-version"], capture_output=True, text=True, check=False)
    return (f"{platform.platform()}, Python {platform.python_version()}, numpy {np.__version__}; "
            f"PyAV {av.__version__} (FFmpeg libs {av.library_versions['libavcodec']} avcodec), "
            f"imageio {imageio.__version__}, imageio-ffmpeg {imageio_ffmpeg.__version__} "
            f"({ffmpeg.stdout.split(' Copyright')[0]})")


def main(pythons: list[str]) -> None:
    results, notes = [], []
    with tempfile.TemporaryDirectory(prefix="byg-video-readers-") as tmp:
        folder = Path(tmp)
        clips = make_clips(folder)
        for make in (PyAV, ImageioFFmpeg, Decord):
            try:
                reader = make()
            except ImportError as err:
                notes.append(f"{make.__name__} in this interpreter skipped: does not import ({err})")
                continue
            results.append({"reader": reader.name, "rows": measure(reader, clips, folder),
                            "bad_widths": sweep(reader, folder)})
        for python in pythons:
            run = subprocess.run([python, __file__, "--worker", str(folder)], capture_output=True, text=True, check=False)
            if run.returncode != 0 or not run.stdout.strip():
                notes.append(f"{python} skipped: exit {run.returncode} {run.stderr.strip()[-200:]}")
                continue
            out = json.loads(run.stdout.strip().splitlines()[-1])
            if "skipped" in out:
                notes.append(f"{out['reader']} skipped: {out['skipped']}")
            else:
                out["reader"] += f" ({python}, numpy {out['numpy']})"
                results.append(out)
        kinds = {c["name"]: c["kind"] for c in clips}
    print(versions() + "\n")
    print("| reader | clip | len | seq | seek | batch |\n|---|---|---|---|---|---|")
    for result in results:
        for row in result["rows"]:
            clip = f"{row['clip']} ({'lossless' if kinds[row['clip']] == 'lossless' else 'H.264 yuv420p'})"
            print(f"| {result['reader']} | {clip} | {row['len']} | {row['seq']} | {row['seek']} | {row['batch']} |")
    print("\nWidths (2-256 even, 264-1280 step 8, 1920; 16 rows, 2 lossless frames) where frame 1 is not exact:")
    for result in results:
        print(f"- {result['reader']}: {', '.join(map(str, result['bad_widths'])) or 'none'}")
    for note in notes:
        print(f"\nnote: {note}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]))
    else:
        main(sys.argv[1:])
