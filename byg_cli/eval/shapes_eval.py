"""Shapes-world evaluations that run a model: the base's text-to-image accuracy (`byg eval shapes`) and a
trained run's edits (`byg eval shapes-edit`). Scoring is byg_cli.eval.shapes_metrics'; this module generates."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from byg_cli.data.images import to_pil, to_tensor
from byg_cli.data.shapes import DEFAULT_IMAGE_SIZE, caption_for_index, render
from byg_cli.data.shapes_edits import evaluation_edits, identity_edits
from byg_cli.eval.shapes_metrics import write_edit_report, write_t2i_report
from byg_cli.outputs import output_folder
from byg_cli.sampling import edit_pixels, generate


def quiet_progress(quiet: bool) -> Progress:
    """The shapes evaluations' progress bar (hidden when `quiet`)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=quiet)


def in_batches(n: int, batch: int) -> Iterable[slice]:
    for start in range(0, n, batch):
        yield slice(start, min(n, start + batch))


@torch.no_grad()
def sample_base(model, captions: Sequence[str], like: torch.Tensor, steps: int, seed: int, batch: int = 50,
                on_batch: Optional[Callable[[int], None]] = None) -> list[torch.Tensor]:
    """Generate one sample per caption with the frozen base (no adapter), in batches (noise seeded `seed` + batch
    number). `like` is one example of the pixels to make, an image (3, H, W) or a clip (3, F, H, W): its latent
    shape is the one sampled. Returns pixel tensors in [-1, 1] on the CPU."""
    latent_shape = tuple(model.encode(like[None]).shape[1:])
    samples: list[torch.Tensor] = []
    for k, part in enumerate(in_batches(len(captions), batch)):
        samples += list(generate(model, list(captions[part]), latent_shape, steps, seed=seed + k).cpu())
        if on_batch:
            on_batch(part.stop)
    return samples


def evaluate_base(model, out_dir: Path, count: int = 500, steps: int = 20, seed: int = 1234,
                  image_size: int = DEFAULT_IMAGE_SIZE, batch: int = 50, quiet: bool = False) -> dict:
    """Generate `count` images for captions sampled from the shapes world (every one with a shape), read them back
    and write shapes_t2i.{json,md} and a grid into out_dir."""
    output_folder(out_dir)  # a bad -o is refused before the sampling
    attrs, captions = zip(*[caption_for_index(seed, i, image_size, empty_fraction=0.0) for i in range(count)])
    with quiet_progress(quiet) as progress:
        task = progress.add_task("sampling the base", total=count)
        blank = to_tensor(np.zeros((image_size, image_size, 3), np.uint8))
        images = [to_pil(x) for x in sample_base(model, captions, blank, steps, seed, batch,
                                                 lambda done: progress.update(task, completed=done))]
    return write_t2i_report(out_dir, images, list(attrs), list(captions))


@torch.no_grad()
def evaluate_edits(editor, out_dir: Path, per_type: int = 50, steps: int = 20, seed: int = 4321,
                   edit_types: Optional[Sequence[str]] = None, image_size: int = DEFAULT_IMAGE_SIZE,
                   batch: int = 50, quiet: bool = False, name: str = "shapes_edit", identity: bool = True) -> dict:
    """Edit held-out shapes-world sources (half of the instructions in phrasings never seen in training) with a
    trained editor and score edit success and preservation per edit type. With `identity`, `per_type` more: the
    identity checks of those edits (spread over their types), whether the editor copies a source it is asked to
    keep as it is."""
    output_folder(out_dir)  # a bad -o is refused before the editing
    edits = evaluation_edits(seed, per_type, edit_types, image_size=image_size)
    if identity:
        checks = identity_edits(edits)
        edits += checks[::max(1, len(checks) // per_type)][:per_type]
    sources = [render(e.source, image_size) for e in edits]
    outputs: list = []
    with quiet_progress(quiet) as progress:
        task = progress.add_task("editing", total=len(edits))
        for k, part in enumerate(in_batches(len(edits), batch)):
            pixels = torch.stack([to_tensor(s) for s in sources[part]])
            out = edit_pixels(editor.model, pixels, [e.instruction for e in edits[part]], steps, seed=seed + k,
                              adapter=editor.weights)
            outputs += [to_pil(x) for x in out]
            progress.update(task, completed=part.stop)
    return write_edit_report(out_dir, edits, sources, outputs, name=name)
