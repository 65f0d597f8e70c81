"""`byg train` on 2 CPU processes (torchrun-style launch, gloo): DDP all-reduces the edit LoRA (once per step,
after 2 accumulation micro-batches), both processes end with the same weights, the run equals a 1-process run
with the same global batch, and its checkpoint resumes on 1 process.

(`accelerate launch --cpu` starts a single process unless MPI is installed, so the test starts the processes
with torch.distributed.run, as accelerate's multi-GPU launcher does; ACCELERATE_USE_CPU makes accelerate pick
gloo on the CPU.)"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import write_recipe
from helpers.wan_helpers import tiny_wan_a14b  # noqa: F401  (fixture)

from byg_cli import checkpoint as ckpt
from byg_cli.recipe import load_recipe
from byg_cli.train import train

pytestmark = pytest.mark.multiproc  # slow too (conftest)
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recipe(root: Path, tiny_flux, tiny_records, batch_size: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return write_recipe(root / "r.toml", tiny_flux, tiny_records, "byg", **{
        "train.steps": 4, "train.batch_size": batch_size, "train.grad_accum": 2, "train.checkpoint_every": 2,
        "train.threads": 1,
        "objective.identity_warmup_steps": 1, "objective.rollout_steps": 2, "export.at_end": False})


def launch_two_processes(recipe_file: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "byg_cli.cli", "train", str(recipe_file), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)


def weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    found = ckpt.checkpoint_dir(run) / f"step-{step:07d}"
    out = {f"edit/{k}": v for k, v in ckpt.load_tensors(found, "trainable").items()}
    out.update({f"ema/{k}": v for k, v in ckpt.load_tensors(found, "ema").items()})
    return out


def assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 2e-5, f"largest difference {worst}"
    assert any(float(a[k].abs().max()) > 0 for k in a if ".lora_B." in k)  # training moved the LoRA


@pytest.fixture(scope="module")
def one(tmp_path_factory, tiny_flux, tiny_records):
    """The reference: 1 process, batch 2 (x 2 accumulation steps)."""
    root = tmp_path_factory.mktemp("one-process")
    return train(load_recipe(recipe(root, tiny_flux, tiny_records, batch_size=2)), quiet=True)


def test_two_processes_match_one_and_resume_on_one(tmp_path, tiny_flux, tiny_records, one):
    two_recipe = recipe(tmp_path / "two", tiny_flux, tiny_records, batch_size=1)
    proc = launch_two_processes(two_recipe, "--max-steps", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    two = tmp_path / "two" / "run"
    state = json.loads((two / "checkpoints" / "step-0000002" / "state.json").read_text())
    assert state["processes"] == 2 and state["sharding"] == "ddp"
    prints = state["rank_fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1]  # both ranks hold bit-identical LoRA (edit and EMA)
    assert_close(weights(two, 2), weights(one, 2))
    # step 2 has full byg micro-batches (warm-up is 1 step), so the cycle/prior passes went through DDP
    logged = [json.loads(line) for line in (two / "losses.jsonl").read_text().splitlines()]
    assert [r["identity_step"] for r in logged][1] < 1.0

    # resume the 2-process checkpoint on 1 process with the same global batch (2 x 1 -> 1 x 2)
    cfg = load_recipe(two_recipe, overrides=["train.batch_size=2"])
    train(cfg, resume=True, quiet=True)
    assert_close(weights(two, 4), weights(one, 4))
    assert json.loads((two / "checkpoints" / "step-0000004" / "state.json").read_text())["processes"] == 1


def test_fsdp_sharded_run_matches_and_resumes_under_ddp(tmp_path, tiny_flux, tiny_records, one):
    """FSDP2 shards the base and both LoRAs over the 2 processes; its checkpoint holds whole tensors (gathered
    weights and AdamW state), equal to the 1-process run, and continues under DDP."""
    fsdp_recipe = recipe(tmp_path / "fsdp", tiny_flux, tiny_records, batch_size=1)
    proc = launch_two_processes(fsdp_recipe, "--set", "train.sharding=fsdp", "--max-steps", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = tmp_path / "fsdp" / "run"
    state = json.loads((run / "checkpoints" / "step-0000002" / "state.json").read_text())
    assert state["sharding"] == "fsdp" and state["processes"] == 2
    assert_close(weights(run, 2), weights(one, 2))
    saved = torch.load(run / "checkpoints" / "step-0000002" / "optimizer.pt", weights_only=False)["optimizer"]
    reference = torch.load(one / "checkpoints" / "step-0000002" / "optimizer.pt", weights_only=False)["optimizer"]
    for index, entry in reference["state"].items():
        torch.testing.assert_close(saved["state"][index]["exp_avg_sq"], entry["exp_avg_sq"], rtol=1e-3, atol=1e-10)
    proc = launch_two_processes(fsdp_recipe, "--resume")  # same recipe, now replicated (DDP)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert_close(weights(run, 4), weights(one, 4))
    assert json.loads((run / "checkpoints" / "step-0000004" / "state.json").read_text())["sharding"] == "ddp"


def test_wan_two_processes_average_gradients_by_hand(tmp_path, tiny_wan_a14b):
    """A backbone that runs its own modules (Wan, two experts) is not DDP-wrapped: every LoRA gradient is averaged
    over the processes after backward, and 2 x 1 equals 1 x 2."""
    from helpers.wan_helpers import write_video_records

    records = write_video_records(tmp_path / "data", count=4, frames=5, fps=8.0)

    def wan_recipe(name, batch_size):
        (tmp_path / name).mkdir()
        return write_recipe(tmp_path / name / "r.toml", tiny_wan_a14b, records, "byg", **{
            "model.family": "wan", "data.height": 32, "data.width": 32, "data.frames": 5,
            "objective.rollout_steps": 2, "objective.identity_warmup_steps": 1, "objective.identity_prob": 0.0,
            "objective.rollout_adapter": "edit", "train.steps": 2, "train.batch_size": batch_size,
            "train.checkpoint_every": 2, "train.sample_every": 0, "train.threads": 1})

    one_run = train(load_recipe(wan_recipe("one", 2)), quiet=True)
    proc = launch_two_processes(wan_recipe("two", 1))
    assert proc.returncode == 0, proc.stderr[-4000:]
    two_run = tmp_path / "two" / "run"
    prints = json.loads((two_run / "checkpoints" / "step-0000002" / "state.json").read_text())["rank_fingerprints"]
    assert prints[0] == prints[1]
    a = ckpt.load_tensors(two_run / "checkpoints" / "step-0000002", "trainable")
    b = ckpt.load_tensors(one_run / "checkpoints" / "step-0000002", "trainable")
    assert any(k.startswith("edit.transformer_2.") for k in a)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 2e-5
