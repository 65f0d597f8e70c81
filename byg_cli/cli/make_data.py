"""`byg make-data SOURCE [EXTRA]`: build edit tuples. SOURCE is an images folder (VLM edits), "videos" (EXTRA is
the captions file) or "shapes" (the synthetic shapes world). Parses arguments and hands over to byg_cli.makedata."""

from pathlib import Path
from typing import List, Optional

import typer

from byg_cli.cli.app import app
from byg_cli.errors import BygError


@app.command("make-data")
def make_data_command(
    source: str = typer.Argument(..., help='An images folder, "videos" or "shapes".'),
    extra: Optional[str] = typer.Argument(None, help='"videos": the captions file (VideoUFO-style CSV/JSONL); "shapes": the output folder.'),
    out: Optional[Path] = typer.Option(
        None, "-o", "--out", help="Output: records JSONL for images/videos (default edits.jsonl; rejects go next to "
                                  "it), a folder for shapes (default data/shapes)."),
    count: Optional[int] = typer.Option(None, "--count", help="How many tuples/captions to make (shapes: 1000)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random draw."),
    vlm: Optional[str] = typer.Option(
        None, "--vlm", help="Images: a local Qwen-VL model folder or an http(s):// server (default: vlm in byg.toml "
                            "/ BYG_VLM)."),
    vlm_model: Optional[str] = typer.Option(None, "--vlm-model", help="Model name on the --vlm/--llm server (default: its first)."),
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
    clips: Optional[Path] = typer.Option(
        None, "--clips", help="Videos: folder of clips <id>.mp4: where --t2v writes them (default: clips/ next to "
                              "--out), or, without --t2v, clips generated elsewhere to select."),
    frames: int = typer.Option(81, "--frames", help="Videos: frames per clip (4k+1)."),
    height: int = typer.Option(480, "--height", help="Videos: clip height in pixels."),
    width: int = typer.Option(832, "--width", help="Videos: clip width in pixels."),
    fps: float = typer.Option(16.0, "--fps", help="Videos: frame rate the clips are written at."),
    steps: int = typer.Option(40, "--steps", help="Videos: UniPC sampling steps per clip."),
    guidance: float = typer.Option(4.0, "--guidance", help="Videos: classifier-free guidance (high-noise expert)."),
    guidance_2: float = typer.Option(3.0, "--guidance-2", help="Videos: guidance of the low-noise expert (A14B)."),
    negative_prompt: str = typer.Option("", "--negative-prompt", help="Videos: the guidance's negative prompt."),
    t2v_batch: int = typer.Option(1, "--t2v-batch", help="Videos: clips generated together."),
    keep_list: Optional[Path] = typer.Option(None, "--keep-list", help="Videos: manual 'ID keep|reject' list."),
    clip: Optional[Path] = typer.Option(None, "--clip", help="Videos: open_clip model folder for the style check."),
    clip_threshold: float = typer.Option(0.5, "--clip-threshold", help="Videos: least CLIP probability of the style."),
    split: str = typer.Option("train", "--split", help="Shapes: instruction phrasings, 'train' or 'heldout'."),
    edit_types: Optional[List[str]] = typer.Option(
        None, "--edit-type", help="Shapes: only this edit type (repeatable): color, background, shape, style, add, "
                                  "remove."),
    size: int = typer.Option(32, "--size", help="Shapes: image side in pixels."),
) -> None:
    """Make edit tuples: VLM edits for a folder of images, styled prompts and clips for videos, or the shapes world."""
    server = dict(batch_size=batch_size, concurrency=concurrency, timeout=timeout, retries=retries)
    if source == "shapes":
        from byg_cli.data.shapes_dataset import write_shapes_dataset

        if extra is not None and out is not None and Path(extra) != out:
            raise BygError(f"make-data shapes: output folder given twice ({extra} and --out {out})")
        folder = out or (Path(extra) if extra is not None else Path("data/shapes"))
        metadata = write_shapes_dataset(folder, count or 1000, seed, edit_types, split, image_size=size)
        typer.echo(f"wrote {metadata}")
        return
    from byg_cli.project_defaults import ProjectDefaults

    out, defaults = out or Path("edits.jsonl"), ProjectDefaults()
    vlm_model = defaults.value("vlm_model", vlm_model)
    if source == "videos":
        from byg_cli.makedata.entry import run_videos

        llm = defaults.value("llm", llm)
        run_videos(extra, out=out, count=count, seed=seed, llm=llm, llm_model=vlm_model, t2v=t2v, clips=clips,
                   keep_list=keep_list, clip=clip, clip_threshold=clip_threshold, **server,
                   clip_settings=dict(frames=frames, height=height, width=width, fps=fps, steps=steps,
                                      guidance=guidance, guidance_2=guidance_2, negative_prompt=negative_prompt,
                                      batch_size=t2v_batch))
        return
    if not Path(source).is_dir():
        raise BygError(f"make-data: unknown SOURCE '{source}': not an images folder; accepted sources: an images "
                       f"folder, videos, shapes")
    from byg_cli.makedata.entry import run_images

    vlm = defaults.need("vlm", vlm, f"make-data {source}")
    run_images(source, extra, out=out, count=count, seed=seed, vlm=vlm, vlm_model=vlm_model, metadata=metadata,
               limit=limit, k=k, p_style=p_style, max_new_tokens=max_new_tokens, **server)
