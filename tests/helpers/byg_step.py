"""The tiny FLUX, batch and one-step runner that the byg step tests share (test_byg_step, test_perf_passes)."""

import pytest
import torch

from byg_cli.data.dataset import EditDataset
from byg_cli.data.sources import ShuffledRecords, collate
from byg_cli.engine.objectives import BygConfig, BygObjective
from byg_cli.engine.schedule import TimestepSampler
from byg_cli.models.flux import FluxBackbone


class Recorder:
    """Passes every call through to the real backbone and records the velocity calls' arguments."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def velocity(self, y_t, t, cond, source=None, adapter="edit"):
        out = self.model.velocity(y_t, t, cond, source=source, adapter=adapter)
        self.calls.append({"y_t": y_t, "t": t, "source": source, "adapter": adapter, "requires_grad": out.requires_grad})
        return out


@pytest.fixture
def model(tiny_flux):
    torch.manual_seed(0)
    m = FluxBackbone.load(tiny_flux)
    m.add_adapters(4, 4)
    with torch.no_grad():  # give both LoRAs non-zero, different weights so every path is exercised
        for p in m.lora_parameters("edit"):
            p.normal_(0, 0.05)
        for p in m.lora_parameters("ema"):
            p.normal_(0, 0.05)
    return m


@pytest.fixture
def batch(tiny_records):
    source = ShuffledRecords(EditDataset(tiny_records, 32))
    return collate([source.item(i) for i in range(2)])


def run_step(model, batch, seed=0, **cfg):
    cfg = {"rollout_steps": 3, "identity_warmup_steps": 0, "identity_prob": 0.0, "checkpoint_passes": False, **cfg}
    objective = BygObjective(TimestepSampler(), BygConfig(**cfg))
    objective.trace = {}
    rec = Recorder(model)
    loss, logs = objective(batch, rec, step=10, generator=torch.Generator().manual_seed(seed))
    return loss, logs, objective.trace, rec.calls
