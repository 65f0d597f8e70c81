"""`byg eval ...`: benchmark commands. Each parses its options and calls one engine function."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from byg_cli.cli.app import app

eval_app = typer.Typer(help="Evaluate editors on the paper's benchmarks (JSON, markdown tables, plots).",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")

Opt = typer.Option


def _judge_options(judge, judge_model, judge_name, concurrency, random_on_parse_failure, judge_seed, prompts=None,
                   protocol=None):
    from byg_cli.eval.edit_bench import JudgeOptions

    return JudgeOptions(spec=judge, model=judge_model, name=judge_name, concurrency=concurrency,
                        random_on_parse_failure=random_on_parse_failure, seed=judge_seed, prompts=prompts,
                        protocol=protocol)


JudgeSpec = Annotated[Optional[str], Opt(help="Judge: a local VLM folder (transformers) or an OpenAI-compatible URL.")]
JudgeModel = Annotated[Optional[str], Opt(help="Model name to request from an OpenAI-compatible judge server.")]
JudgeName = Annotated[Optional[str], Opt(help="Folder name for this judge's scores (default: the backend's name, "
                                              "plus the prompts and protocol unless byg's own).")]
Concurrency = Annotated[int, Opt(help="Parallel judge requests.")]
RandomFill = Annotated[Optional[bool], Opt("--random-on-parse-failure/--no-random-on-parse-failure",
                                           help="Random scores when an answer cannot be parsed (byg protocol: off, "
                                                "two draws, their min; reference protocol: on, one draw).")]
Prompts = Annotated[Optional[Path], Opt(help="A VIEScore checkout (or its prompt files): judge with the official "
                                             "SC/PQ templates and the reference's request layout.")]
Protocol = Annotated[Optional[str], Opt(help="Answer parsing and fallback: 'reference' (VIEScore's; the default "
                                             "with --prompts) or 'byg' (stricter, failures counted).")]
JudgeSeed = Annotated[int, Opt(help="Seed sent with judge requests (and for --random-on-parse-failure).")]
Run = Annotated[Optional[Path], Opt(help="Trained run folder whose editor generates the edits (omit to only judge; "
                                         "default: run in byg.toml / BYG_RUN unless --method is given).")]
Checkpoint = Annotated[str, Opt(help="Checkpoint of the run.")]
Method = Annotated[Optional[str], Opt(help="Method name for the output folder (default: the run folder's name).")]


def _method(method: Optional[str], run: Optional[Path]) -> str:
    from byg_cli.errors import BygError

    if method:
        return method
    if run is None:
        raise BygError("--method is required when no --run is given (or set run in byg.toml or BYG_RUN)")
    return run.resolve().name


def _defaults(run, method, judge, judge_model):
    """The project defaults (byg.toml, BYG_*) and the run, judge and judge model filled from them where left out.
    --method without --run judges outputs already there, so the configured run is not taken then."""
    from byg_cli.project_defaults import ProjectDefaults

    defaults = ProjectDefaults()
    run = defaults.value("run", run) if method is None else run
    return defaults, run, defaults.value("judge", judge), defaults.value("judge_model", judge_model)


@eval_app.command("gedit")
def gedit(
    data: Annotated[Optional[Path], Opt(help="Local GEdit-Bench copy: folder (or file) of its .arrow / .parquet "
                                             "files (default: gedit.data in byg.toml / BYG_GEDIT_DATA).")] = None,
    run: Run = None,
    judge: JudgeSpec = None,
    out: Annotated[Path, Opt(help="Results folder (benchmark layout <method>/fullset/<task_type>/<lang>/).")] = Path("eval/gedit"),
    method: Method = None,
    checkpoint: Checkpoint = "latest",
    language: Annotated[str, Opt(help="Instruction language subset ('en' or 'cn').")] = "en",
    steps: Annotated[int, Opt(help="Sampling steps of the editor.")] = 20,
    seed: Annotated[int, Opt(help="Editor seed.")] = 0,
    edit_batch_size: Annotated[int, Opt(help="Images per editor call.")] = 1,
    judge_batch_size: Annotated[int, Opt(help="Items per judge round (2 requests each).")] = 8,
    max_per_group: Annotated[Optional[int], Opt(help="Only the first N items of each task type (quick runs).")] = None,
    retry_failed: Annotated[bool, Opt("--retry-failed", help="Ask the judge again where an answer did not parse.")] = False,
    judge_model: JudgeModel = None,
    judge_name: JudgeName = None,
    concurrency: Concurrency = 8,
    random_on_parse_failure: RandomFill = None,
    judge_seed: JudgeSeed = 42,
    prompts: Prompts = None,
    protocol: Protocol = None,
) -> None:
    """GEdit-Bench with VIEScore: per-category SC / PQ / O, the macro Average and the intersection subset."""
    from byg_cli.eval.gedit import GEditOptions, eval_gedit
    from byg_cli.extras import check

    check("byg eval gedit", "eval")

    defaults, run, judge, judge_model = _defaults(run, method, judge, judge_model)
    data = defaults.need("gedit.data", data, "byg eval gedit")
    opts = GEditOptions(data=data, out=out, method=_method(method, run), language=language, steps=steps, seed=seed,
                        edit_batch_size=edit_batch_size, judge_batch_size=judge_batch_size,
                        max_per_group=max_per_group, retry_failed=retry_failed, judge_name=judge_name)
    eval_gedit(opts, _judge_options(judge, judge_model, judge_name, concurrency, random_on_parse_failure, judge_seed,
                                    prompts, protocol), run=run, checkpoint=checkpoint)


@eval_app.command("styles")
def styles(
    photo: Annotated[Optional[Path], Opt(help="Folder of photorealistic sources (photo -> style edits).")] = None,
    stylized: Annotated[Optional[Path], Opt(help="Folder with one sub-folder of stylized sources per style (style -> photo).")] = None,
    manifest: Annotated[Optional[Path], Opt(help="JSONL of edits {id, direction, style, source, instruction} instead of folders.")] = None,
    style: Annotated[Optional[list[str]], Opt(help="Restrict to these styles (repeatable): gta_v, minecraft, american_comic, low_poly, voxel, lego.")] = None,
    run: Run = None,
    judge: JudgeSpec = None,
    out: Annotated[Path, Opt(help="Results folder.")] = Path("eval/styles"),
    method: Method = None,
    checkpoint: Checkpoint = "latest",
    steps: Annotated[int, Opt(help="Sampling steps of the editor.")] = 20,
    seed: Annotated[int, Opt(help="Editor seed.")] = 0,
    edit_batch_size: Annotated[int, Opt(help="Images per editor call.")] = 1,
    judge_batch_size: Annotated[int, Opt(help="Items per judge round.")] = 8,
    retry_failed: Annotated[bool, Opt("--retry-failed", help="Ask the judge again where an answer did not parse.")] = False,
    judge_model: JudgeModel = None,
    judge_name: JudgeName = None,
    concurrency: Concurrency = 8,
    random_on_parse_failure: RandomFill = None,
    judge_seed: JudgeSeed = 42,
    prompts: Prompts = None,
    protocol: Protocol = None,
) -> None:
    """The long-tail style benchmark (six styles, both directions) with VIEScore, as the paper's Table 2."""
    from byg_cli.eval.styles import eval_styles
    from byg_cli.extras import check

    check("byg eval styles", "eval")

    defaults, run, judge, judge_model = _defaults(run, method, judge, judge_model)
    if photo is None and stylized is None and manifest is None:
        photo, stylized = defaults.value("styles.photo"), defaults.value("styles.stylized")
    eval_styles(out=out, method=_method(method, run), photo=photo, stylized=stylized, manifest=manifest,
                styles=style, run=run, checkpoint=checkpoint,
                judge_opts=_judge_options(judge, judge_model, judge_name, concurrency, random_on_parse_failure,
                                          judge_seed, prompts, protocol),
                steps=steps, seed=seed, edit_batch_size=edit_batch_size, judge_batch_size=judge_batch_size,
                retry_failed=retry_failed)


@eval_app.command("video")
def video(
    edited: Annotated[list[str], Opt(help="Edited videos of one method, as NAME=DIR or DIR (repeatable).")],
    source: Annotated[Optional[Path], Opt(help="Folder of source videos (files or frame folders), one id per video "
                                               "(default: video.source in byg.toml / BYG_VIDEO_SOURCE).")] = None,
    captions: Annotated[Optional[Path], Opt(help="JSONL {id, source_caption, target_caption} per video (default: "
                                                 "video.captions in byg.toml / BYG_VIDEO_CAPTIONS).")] = None,
    out: Annotated[Path, Opt(help="Results folder.")] = Path("eval/video"),
    clip: Annotated[Optional[Path], Opt(help="CLIP: OpenAI checkpoint file (ViT-L-14.pt), open_clip folder, or weights of --clip-arch.")] = None,
    clip_arch: Annotated[Optional[str], Opt(help="open_clip architecture of a non-OpenAI --clip weights file.")] = None,
    dino: Annotated[Optional[Path], Opt(help="DINO ViT folder (transformers), e.g. a converted dino-vits16.")] = None,
    dino_size: Annotated[Optional[int], Opt(help="DINO crop size (default: the model config's image size).")] = None,
    raft: Annotated[Optional[Path], Opt(help="torchvision RAFT state_dict (dynamic degree, built-in tracker).")] = None,
    raft_variant: Annotated[str, Opt(help="'large' (VBench) or 'small'.")] = "large",
    aesthetic_head: Annotated[Optional[Path], Opt(help="LAION linear head state_dict (sa_0_4_vit_l_14_linear.pth).")] = None,
    tracks: Annotated[Optional[Path], Opt(help="Precomputed tracks <dir>/<method|source>/<id>.npy, (N, T, 2).")] = None,
    motion_formula: Annotated[str, Opt(help="'symmetric' (default) or 'reference-code'.")] = "symmetric",
    track_grid: Annotated[int, Opt(help="Grid side of the built-in tracker's points.")] = 30,
    device: Annotated[Optional[str], Opt(help="torch device (default: cuda if available).")] = None,
    clip_preprocess: Annotated[str, Opt(help="CLIP dir input: 'squash' (whole frame to 224x224, as InstructPix2Pix) "
                                             "or 'crop' (short side, centre crop).")] = "squash",
) -> None:
    """Reference-based video metrics, mean ± SEM per method, as the paper's Table 1."""
    from byg_cli.eval.video import eval_video
    from byg_cli.extras import check
    from byg_cli.project_defaults import ProjectDefaults

    check("byg eval video", "eval")

    defaults = ProjectDefaults()
    source = defaults.need("video.source", source, "byg eval video")
    captions = defaults.need("video.captions", captions, "byg eval video")
    clip, dino = defaults.value("video.clip", clip), defaults.value("video.dino", dino)
    raft, aesthetic_head = defaults.value("video.raft", raft), defaults.value("video.aesthetic_head", aesthetic_head)
    eval_video(source=source, edited=edited, captions=captions, out=out, clip=clip, clip_arch=clip_arch, dino=dino,
               dino_size=dino_size, raft=raft, raft_variant=raft_variant, aesthetic_head=aesthetic_head,
               tracks=tracks, motion_formula=motion_formula, track_grid=track_grid, device=device,
               clip_preprocess=clip_preprocess)
