"""`byg make-data SOURCE [EXTRA]`: build edit tuples. SOURCE is an images folder (VLM edits), "videos" (EXTRA is
the captions file) or "shapes" (the synthetic shapes world). Parses arguments and hands over to byg_cli.makedata."""

from pathlib import Path
from typing import Optional

import typer

from byg_cli.cli.app import app
from byg_cli.errors import BygError


@app.command("make-data")
def make_data_command(
    source: str = typer.Argument(..., help='An images folder, "videos" or "shapes".'),
    extra: Optional[str] = typer.Argument(None, help='For "videos": the captions file (VideoUFO-style CSV/JSONL).'),
    out: Path = typer.Option(Path("edits.jsonl"), "-o", "--out", help="Output records (JSONL); rejects go next to it."),
    count: Optional[int] = typer.Option(None, "--count", help="How many tuples/captions to make (shapes, videos)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random draw."),
    vlm: Optional[str] = typer.Option(None, "--vlm", help="Images: a local Qwen-VL model folder or an http(s):// server."),
    vlm_model: Optional[str] = typer.Option(None, "--vlm-model", help="Model name on the server (default: its first)."),
    metadata: Optional[Path] = typer.Option(None, "--metadata", help="Images: OpenImages-style metadata CSV."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Images: only the first N images (sorted by path)."),
    k: int = typer.Option(3, "--k", help="Images: edit types offered per image."),
    p_style: float = typer.Option(0.15, "--p-style", help="Images: chance of a forced photorealistic edit for non-photos."),
    batch_size: int = typer.Option(4, "--batch-size", help="Local model: images per generate() call."),
    concurrency: int = typer.Option(8, "--concurrency", help="Server: requests in flight."),
    timeout: float = typer.Option(120, "--timeout", help="Server: seconds per request."),
    retries: int = typer.Option(3, "--retries", help="Server: retries on timeouts, connection errors and 5xx."),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens", help="Images: answer length limit (tokens)."),
    llm: Optional[str] = typer.Option(None, "--llm", help="Videos: model (folder or URL) that sanitises captions."),
    t2v: Optional[str] = typer.Option(None, "--t2v", help="Videos: the text-to-video model for the clips."),
    clips: Optional[Path] = typer.Option(None, "--clips", help="Videos: folder of generated clips <id>.mp4 to select."),
    keep_list: Optional[Path] = typer.Option(None, "--keep-list", help="Videos: manual 'ID keep|reject' list."),
    clip: Optional[Path] = typer.Option(None, "--clip", help="Videos: open_clip model folder for the style check."),
    clip_threshold: float = typer.Option(0.5, "--clip-threshold", help="Videos: least CLIP probability of the style."),
) -> None:
    """Make edit tuples: VLM edits for a folder of images, styled prompts and clips for videos, or the shapes world."""
    from byg_cli.vlm import open_backend

    def backend(spec: str, model: Optional[str]):
        return open_backend(spec, model=model, concurrency=concurrency, timeout=timeout, retries=retries,
                            batch_size=batch_size)

    chunk = max(batch_size, concurrency) if (vlm or llm or "").startswith(("http://", "https://")) else batch_size
    if source == "shapes":
        raise BygError("shapes: not available in this build")
    if source == "videos":
        from byg_cli.makedata.video_captions import generate_clips, make_video_prompts, prompts_path
        from byg_cli.makedata.video_select import select_clips

        if extra is None:
            raise BygError("videos: give the captions file, e.g. byg make-data videos captions.csv --llm MODEL")
        prompts = prompts_path(out)
        if clips is None:
            if llm is None:
                raise BygError("videos: --llm MODEL_PATH_OR_URL is needed to sanitise the captions")
            make_video_prompts(Path(extra), backend(llm, vlm_model), prompts, seed=seed, count=count, chunk=chunk)
            if t2v is not None:
                generate_clips(prompts, t2v, out.parent / "clips")
            return
        select_clips(prompts, clips, out, keep_list=keep_list, clip_model=clip, threshold=clip_threshold)
        return
    from byg_cli.makedata.images import make_image_edits

    if extra is not None:
        raise BygError(f"{extra}: unexpected second argument for an images folder")
    if vlm is None:
        raise BygError(f"{source}: --vlm MODEL_PATH_OR_URL is needed to make edits for an images folder")
    if count is not None:
        raise BygError("--count is for shapes and videos; use --limit N for an images folder")
    make_image_edits(Path(source), backend(vlm, vlm_model), out, metadata=metadata, seed=seed, limit=limit, k=k,
                     p_style=p_style, chunk=chunk, max_new_tokens=max_new_tokens)
