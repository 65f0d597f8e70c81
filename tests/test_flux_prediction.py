"""A tiny base may predict the clean sample; the backbone still hands the engine a velocity."""

import torch

from byg_cli.models.flux import FluxBackbone
from byg_cli.models.tiny import TinyFluxSpec, write_tiny_flux


def test_sample_prediction_round_trips_and_becomes_a_velocity(tmp_path):
    folder = write_tiny_flux(tmp_path / "m", TinyFluxSpec(prediction="sample"))
    model = FluxBackbone.load(folder)
    assert model.prediction == "sample" and (folder / "byg.json").is_file()
    y = torch.randn(2, 12, 16, 16)
    t = torch.tensor([0.8, 0.01])
    cond = model.encode_text(["a red circle", "a blue square"])
    with torch.no_grad():
        v = model.velocity(y, t, cond, source=None, adapter=None)
        model.prediction = "velocity"
        raw = model.velocity(y, t, cond, source=None, adapter=None)  # the transformer's own output: x_hat
    expected = (y - raw) / torch.tensor([0.8, 0.05]).view(-1, 1, 1, 1)  # t clamped at prediction_t_min
    assert torch.allclose(v, expected, atol=1e-5)
    # with x_hat = the clean sample itself, v is exactly eps - x along the straight path
    x, eps = torch.randn(1, 12, 16, 16), torch.randn(1, 12, 16, 16)
    y_t = 0.4 * x + 0.6 * eps
    assert torch.allclose((y_t - x) / 0.6, eps - x, atol=1e-5)
    assert (FluxBackbone.load(write_tiny_flux(tmp_path / "v", TinyFluxSpec())).prediction == "velocity")
