"""What `byg make-data` runs for an images folder and for "videos": checks the option combination, opens the
chat backend and hands over to the image job or the video stages."""

from __future__ import annotations

import math
from pathlib import Path

from byg_cli.errors import BygError
from byg_cli.outputs import check_output_file


def chunk_size(spec: str, *, batch_size: int, concurrency: int) -> int:
    """The job's chunk size: a batch for a local model, the requests in flight for a server."""
    return max(batch_size, concurrency) if spec.startswith(("http://", "https://")) else batch_size


def check_timeout(timeout: float) -> None:
    """--timeout is the deadline of each request to a server, in seconds."""
    if not (timeout > 0 and math.isfinite(timeout)):
        raise BygError(f"--timeout must be a positive number of seconds (the deadline of each request), got {timeout:g}")


def check_seed(seed: int) -> None:
    """--seed seeds every draw (the same rule as `make-data shapes`)."""
    if seed < 0:
        raise BygError(f"--seed must be >= 0, got {seed}")


def run_images(source: str, extra: str | None, *, out: Path, count: int | None, seed: int, vlm: str | None,
               vlm_model: str | None, metadata: Path | None, limit: int | None, k: int, p_style: float,
               max_new_tokens: int, batch_size: int, concurrency: int, timeout: float, retries: int) -> None:
    from byg_cli.makedata.images import make_image_edits
    from byg_cli.vlm import open_backend

    if extra is not None:
        raise BygError(f"{extra}: unexpected second argument for an images folder")
    check_timeout(timeout)
    check_seed(seed)
    if vlm is None:
        raise BygError(f"{source}: --vlm MODEL_PATH_OR_URL is needed to make edits for an images folder")
    if count is not None:
        raise BygError("--count is for shapes and videos; use --limit N for an images folder")
    backend = open_backend(vlm, model=vlm_model, concurrency=concurrency, timeout=timeout, retries=retries,
                           batch_size=batch_size)
    make_image_edits(Path(source), backend, out, metadata=metadata, seed=seed, limit=limit, k=k, p_style=p_style,
                     chunk=chunk_size(vlm, batch_size=batch_size, concurrency=concurrency),
                     max_new_tokens=max_new_tokens)


def run_videos(captions: str | None, *, out: Path, count: int | None, seed: int, llm: str | None,
               llm_model: str | None, t2v: str | None, clips: Path | None, keep_list: Path | None,
               clip: Path | None, clip_threshold: float, batch_size: int, concurrency: int, timeout: float,
               retries: int, clip_settings: dict | None = None) -> None:
    """Captions -> styled prompts (--llm) -> clips (--t2v, into --clips or <out's folder>/clips) -> records
    (--keep-list and/or --clip). Without --t2v, --clips DIR selects clips generated elsewhere."""
    from rich.console import Console

    from byg_cli.extras import check
    from byg_cli.makedata.video_captions import make_video_prompts, prompts_path
    from byg_cli.makedata.video_clips import ClipSettings, generate_clips
    from byg_cli.makedata.video_select import select_clips
    from byg_cli.vlm import open_backend

    if captions is None:
        raise BygError("videos: give the captions file, e.g. byg make-data videos captions.csv --llm MODEL")
    check_timeout(timeout)
    check_seed(seed)
    if t2v is not None:
        check("byg make-data videos --t2v", "video")  # writing the clips
    if clip is not None:
        check("byg make-data videos --clip", "video", "eval")  # decoding frames, open_clip
    check_output_file(out)
    prompts = prompts_path(out)
    select = dict(keep_list=keep_list, clip_model=clip, threshold=clip_threshold)
    if t2v is None and clips is not None:  # select clips generated elsewhere into records
        select_clips(prompts, clips, out, **select)
        return
    if llm is None:
        raise BygError("videos: --llm MODEL_PATH_OR_URL is needed to sanitise the captions")
    settings = ClipSettings(seed=seed, **(clip_settings or {}))
    if t2v is not None:
        settings.check()  # bad clip options fail before the LLM step
    backend = open_backend(llm, model=llm_model, concurrency=concurrency, timeout=timeout, retries=retries,
                           batch_size=batch_size)
    make_video_prompts(Path(captions), backend, prompts, seed=seed, count=count,
                       chunk=chunk_size(llm, batch_size=batch_size, concurrency=concurrency))
    if t2v is None:
        return
    clips_dir = clips or out.parent / "clips"
    generate_clips(prompts, t2v, clips_dir, settings)
    if keep_list is None and clip is None:
        Console(stderr=True).print(f"review the clips in {clips_dir}, then run again with --keep-list FILE "
                                   "and/or --clip MODEL to write the records")
        return
    select_clips(prompts, clips_dir, out, **select)
