"""A run's batches by micro-step: made in the training process or ahead of it by data workers, they are the same."""

import json

import pytest
import torch
from typer.testing import CliRunner

from conftest import write_recipe

from byg_cli.cli import app
from byg_cli.data.dataset import ShapesCaptionStream
from byg_cli.data.step_batches import BatchFeed, StepBatches


def same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor):
            if not torch.equal(x, y):
                return False
        elif x != y:
            return False
    return True


def test_batch_k_of_rank_r_holds_its_slice_of_the_global_batch():
    source = ShapesCaptionStream(seed=3)
    batches = StepBatches(source, batch_size=4, world=2, rank=1)
    batch = batches[5]
    first = (5 * 2 + 1) * 4  # batches 0..4 of both ranks, then rank 0's part of batch 5
    assert batch["caption"] == [source.item(first + i)["caption"] for i in range(4)]
    assert torch.equal(batch["pixels"][2], source.item(first + 2)["pixels"])
    assert batch["_rows"] == (4, 8)


def test_workers_hand_out_the_batches_made_in_process_also_after_a_jump():
    batches = StepBatches(ShapesCaptionStream(seed=0), batch_size=3, world=2, rank=0)
    here, ahead = BatchFeed(batches), BatchFeed(batches, workers=2, end=40)
    try:
        for k in [0, 1, 2, 3, 4, 5, 17, 18, 19, 6]:  # in order, then a resume further on, then back
            assert same(ahead(k), here(k)), f"batch {k} differs"
    finally:
        ahead.close()
    assert ahead._iter is None


def test_negative_workers_are_refused():
    with pytest.raises(ValueError, match="workers"):
        BatchFeed(StepBatches(ShapesCaptionStream(seed=0), 2), workers=-1)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["byg", "t2i"])
def test_a_run_with_data_workers_trains_exactly_as_one_without(tmp_path, tiny_flux, tiny_records, objective):
    losses = {}
    for workers in (0, 2):
        folder = tmp_path / f"w{workers}"
        folder.mkdir()
        recipe = write_recipe(folder / "r.toml", tiny_flux, tiny_records, objective,
                              **{"train.steps": 8, "train.grad_accum": 2, "train.data_workers": workers})
        result = CliRunner().invoke(app, ["train", str(recipe)])
        assert result.exit_code == 0, result.output
        losses[workers] = [json.loads(line) for line in (folder / "run" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses[2]] == list(range(1, 9))
    assert losses[2] == losses[0]
