"""`byg make-data images|videos|shapes`: build edit tuples. Each subcommand parses its own options and hands over
to byg_cli.makedata (images, videos) or byg_cli.data.shapes_dataset (shapes). The plain form
`byg make-data FOLDER ...`, with no subcommand, is `byg make-data images FOLDER ...`."""

import difflib
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from typer._click.exceptions import NoSuchOption
from typer.core import TyperCommand, TyperGroup

from byg_cli.cli.app import app
from byg_cli.errors import BygError

SUBCOMMANDS = ("images", "videos", "shapes")
PLAIN_FORM = "images"  # what `byg make-data FOLDER ...` means
# Said after "No such option" when an option of one subcommand is given to another.
OPTION_HINTS = {("images", "--count"): "for an images folder use --limit N"}


class MakeDataGroup(TyperGroup):
    """A first token that names no subcommand (an images folder, or an option) means `images`: the plain form."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [PLAIN_FORM, *args]
        return super().parse_args(ctx, args)


class MakeDataCommand(TyperCommand):
    """An option of another make-data subcommand is refused naming the subcommand(s) it belongs to."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption as err:
            siblings = ctx.parent.command.commands if ctx.parent is not None else {}
            owners = [f"`byg make-data {name}`" for name, cmd in siblings.items()
                      if cmd is not self and any(err.option_name in p.opts for p in cmd.params)]
            if owners:
                err.message += f"; it is an option of {' and '.join(owners)}"
                err.possibilities = None  # not a typo: close matches would mislead
            hint = OPTION_HINTS.get((ctx.info_name, err.option_name))
            if hint:
                err.message += f"; {hint}"
            raise

    def collect_usage_pieces(self, ctx):  # a hidden argument stays out of the usage line too
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not getattr(param, "hidden", False):
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


make_data_app = typer.Typer(
    cls=MakeDataGroup, no_args_is_help=True, subcommand_metavar="images|videos|shapes ARGS...",
    help="Make edit tuples: VLM edits for a folder of images, styled prompts and clips for videos, or the "
         "synthetic shapes world.\n\n"
         "The plain form `byg make-data FOLDER [OPTIONS]` (no subcommand) means `byg make-data images FOLDER "
         "[OPTIONS]`. A rerun with the same output resumes: what is already done is skipped.")
app.add_typer(make_data_app, name="make-data")

Opt = typer.Option
BACKEND = "Model backend"
CLIPS = "Clips (--t2v)"
SELECT = "Selecting clips into records"

Seed = Annotated[int, Opt("--seed", help="Seed of every random draw.")]
VlmModel = Annotated[Optional[str], Opt("--vlm-model", help="Model name to request from the server (default: its "
                                                            "first; byg.toml vlm_model / BYG_VLM_MODEL).",
                                        rich_help_panel=BACKEND)]
BatchSize = Annotated[int, Opt("--batch-size", help="Local model: requests per generate() call.",
                               rich_help_panel=BACKEND)]
Concurrency = Annotated[int, Opt("--concurrency", help="Server: requests in flight.", rich_help_panel=BACKEND)]
Timeout = Annotated[float, Opt("--timeout", help="Server: seconds per request.", rich_help_panel=BACKEND)]
Retries = Annotated[int, Opt("--retries", help="Server: retries on timeouts, connection errors and 5xx.",
                             rich_help_panel=BACKEND)]
Records = Annotated[Path, Opt("-o", "--out", help="Records JSONL to write; rejects go next to it "
                                                  "(<out>.rejects.jsonl).")]


@make_data_app.command("images", cls=MakeDataCommand, help=(
    "VLM edit tuples for a folder of images (what the plain `byg make-data FOLDER` runs).\n\n"
    "Per image a source caption, an instruction, the target caption and the reverse instruction, or a reject "
    "saying why; a rerun with the same --out skips the images already done."))
def images_command(
    source: Optional[str] = typer.Argument(
        None, metavar="FOLDER", help="Folder of images (.jpg, .png, .webp; searched recursively). Left out: "
                                     "./images, if there is one."),
    extra: Optional[str] = typer.Argument(None, hidden=True),  # refused by run_images, after the SOURCE check
    out: Records = Path("edits.jsonl"),
    seed: Seed = 0,
    metadata: Optional[Path] = Opt(None, "--metadata", help="OpenImages-style metadata CSV (labels, captions)."),
    limit: Optional[int] = Opt(None, "--limit", help="Only the first N images (sorted by path)."),
    k: int = Opt(3, "--k", help="Edit types offered per image."),
    p_style: float = Opt(0.15, "--p-style", help="Chance of a forced photorealistic edit for non-photos."),
    vlm: Optional[str] = Opt(None, "--vlm", help="A local Qwen-VL model folder or an http(s):// server (default: "
                                                 "vlm in byg.toml / BYG_VLM).", rich_help_panel=BACKEND),
    vlm_model: VlmModel = None,
    max_new_tokens: int = Opt(1024, "--max-new-tokens", help="Answer length limit (tokens).",
                              rich_help_panel=BACKEND),
    batch_size: BatchSize = 4,
    concurrency: Concurrency = 8,
    timeout: Timeout = 120,
    retries: Retries = 3,
) -> None:
    from byg_cli.project_defaults import ProjectDefaults

    if source is None:  # `byg make-data images` was the plain form for a folder named images
        if not Path("images").is_dir():
            raise BygError("make-data images: give the images folder, e.g. byg make-data images openimages/ "
                           "--vlm MODEL")
        source = "images"
    defaults = ProjectDefaults()
    vlm_model = defaults.value("vlm_model", vlm_model)
    if not Path(source).is_dir():
        close = difflib.get_close_matches(source, SUBCOMMANDS, 1)
        hint = (f"; put the subcommand first: byg make-data {source} ..." if source in SUBCOMMANDS else
                f"; did you mean `byg make-data {close[0]}`?" if close else "")
        raise BygError(f"make-data: unknown SOURCE '{source}': not an images folder (nor a subcommand: "
                       f"{', '.join(SUBCOMMANDS)}){hint}")
    from byg_cli.makedata.entry import run_images

    vlm = defaults.need("vlm", vlm, f"make-data {source}")
    run_images(source, extra, out=out, count=None, seed=seed, vlm=vlm, vlm_model=vlm_model, metadata=metadata,
               limit=limit, k=k, p_style=p_style, max_new_tokens=max_new_tokens, batch_size=batch_size,
               concurrency=concurrency, timeout=timeout, retries=retries)


@make_data_app.command("videos", cls=MakeDataCommand, help=(
    "Video edit tuples: captions -> styled prompts -> clips -> records of the clips kept.\n\n"
    "--llm styles the captions into <out>.prompts.jsonl, --t2v renders them into --clips, and --keep-list and/or "
    "--clip select clips into the records; without --t2v, --clips DIR selects clips generated elsewhere. A rerun "
    "with the same --out skips what is already done."))
def videos_command(
    captions: Optional[Path] = typer.Argument(
        None, metavar="CAPTIONS", help="Captions file (VideoUFO-style CSV or JSONL with id and caption)."),
    out: Records = Path("edits.jsonl"),
    count: Optional[int] = Opt(None, "--count", help="How many captions to use, a seeded sample (default: all)."),
    seed: Seed = 0,
    llm: Optional[str] = Opt(None, "--llm", help="Model (folder or http(s):// server) that strips style hints "
                                                 "from the captions (default: llm in byg.toml / BYG_LLM); the "
                                                 "styled prompts go to <out>.prompts.jsonl.",
                             rich_help_panel=BACKEND),
    vlm_model: VlmModel = None,
    batch_size: BatchSize = 4,
    concurrency: Concurrency = 8,
    timeout: Timeout = 120,
    retries: Retries = 3,
    t2v: Optional[str] = Opt(None, "--t2v", help="The text-to-video model (Wan folder) that makes the clips.",
                             rich_help_panel=CLIPS),
    clips: Optional[Path] = Opt(None, "--clips", help="Folder of clips <id>.mp4: where --t2v writes them (default: "
                                                      "clips/ next to --out), or, without --t2v, clips generated "
                                                      "elsewhere to select.", rich_help_panel=CLIPS),
    frames: int = Opt(81, "--frames", help="Frames per clip (4k+1).", rich_help_panel=CLIPS),
    height: int = Opt(480, "--height", help="Clip height in pixels.", rich_help_panel=CLIPS),
    width: int = Opt(832, "--width", help="Clip width in pixels.", rich_help_panel=CLIPS),
    fps: float = Opt(16.0, "--fps", help="Frame rate the clips are written at.", rich_help_panel=CLIPS),
    steps: int = Opt(40, "--steps", help="UniPC sampling steps per clip.", rich_help_panel=CLIPS),
    guidance: float = Opt(4.0, "--guidance", help="Classifier-free guidance (high-noise expert).",
                          rich_help_panel=CLIPS),
    guidance_2: float = Opt(3.0, "--guidance-2", help="Guidance of the low-noise expert (A14B).",
                            rich_help_panel=CLIPS),
    negative_prompt: str = Opt("", "--negative-prompt", help="The guidance's negative prompt.",
                               rich_help_panel=CLIPS),
    t2v_batch: int = Opt(1, "--t2v-batch", help="Clips generated together.", rich_help_panel=CLIPS),
    keep_list: Optional[Path] = Opt(None, "--keep-list", help="Manual review: lines 'ID keep' or 'ID reject'.",
                                    rich_help_panel=SELECT),
    clip: Optional[Path] = Opt(None, "--clip", help="open_clip model folder for the automatic style check.",
                               rich_help_panel=SELECT),
    clip_threshold: float = Opt(0.5, "--clip-threshold", help="Least CLIP probability of the clip's style.",
                                rich_help_panel=SELECT),
) -> None:
    from byg_cli.makedata.entry import run_videos
    from byg_cli.project_defaults import ProjectDefaults

    defaults = ProjectDefaults()
    vlm_model = defaults.value("vlm_model", vlm_model)
    llm = defaults.value("llm", llm)
    run_videos(captions, out=out, count=count, seed=seed, llm=llm, llm_model=vlm_model, t2v=t2v, clips=clips,
               keep_list=keep_list, clip=clip, clip_threshold=clip_threshold, batch_size=batch_size,
               concurrency=concurrency, timeout=timeout, retries=retries,
               clip_settings=dict(frames=frames, height=height, width=width, fps=fps, steps=steps,
                                  guidance=guidance, guidance_2=guidance_2, negative_prompt=negative_prompt,
                                  batch_size=t2v_batch))


@make_data_app.command("shapes", cls=MakeDataCommand, help=(
    "The synthetic shapes world: exact edit tuples with ground-truth targets, no model needed.\n\n"
    "Writes images/, metadata.jsonl and shapes_dataset.json into the folder; a rerun with the same settings skips "
    "the records already written."))
def shapes_command(
    folder: Optional[Path] = typer.Argument(None, metavar="FOLDER",
                                            help="Output folder (default data/shapes; or give -o)."),
    out: Optional[Path] = Opt(None, "-o", "--out", help="Output folder (the same as FOLDER)."),
    count: int = Opt(1000, "--count", help="Edit tuples to write; a larger count extends an existing folder."),
    seed: Seed = 0,
    split: str = Opt("train", "--split", help="Instruction phrasings, 'train' or 'heldout'."),
    edit_types: Optional[List[str]] = Opt(
        None, "--edit-type", help="Only this edit type (repeatable): color, background, shape, style, add, remove."),
    size: int = Opt(32, "--size", help="Image side in pixels."),
) -> None:
    from byg_cli.data.shapes_dataset import write_shapes_dataset

    if folder is not None and out is not None and folder != out:
        raise BygError(f"make-data shapes: output folder given twice ({folder} and --out {out})")
    metadata = write_shapes_dataset(out or folder or Path("data/shapes"), count, seed, edit_types, split,
                                    image_size=size)
    typer.echo(f"wrote {metadata}")

