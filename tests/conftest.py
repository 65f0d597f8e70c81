import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(int(os.environ.get("BYG_TEST_THREADS", "1")))

COLORS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (30, 60, 220), "yellow": (230, 220, 40)}


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory) -> Path:
    from byg_cli.models.registry import quiet_hf
    from byg_cli.models.tiny import write_tiny_flux

    quiet_hf()
    return write_tiny_flux(tmp_path_factory.mktemp("models") / "tiny-flux")


@pytest.fixture(scope="session")
def tiny_records(tmp_path_factory) -> Path:
    """A few edit records over small coloured images, with rendered targets (for the supervised objective)."""
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    names = list(COLORS)
    lines = []
    for i in range(8):
        src, tgt = rng.choice(len(names), 2, replace=False)
        for tag, colour in (("src", names[src]), ("tgt", names[tgt])):
            arr = np.full((32, 32, 3), 255, np.uint8)
            arr[8:24, 8:24] = COLORS[colour]
            Image.fromarray(arr).save(root / "images" / f"{i}-{tag}.png")
        lines.append({"image": f"images/{i}-src.png", "src_caption": f"a {names[src]} square",
                      "instruction": f"make the square {names[tgt]}", "tgt_caption": f"a {names[tgt]} square",
                      "reverse_instruction": f"make the square {names[src]}", "edit_type": "color",
                      "target_image": f"images/{i}-tgt.png"})
    path = root / "metadata.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def write_recipe(path: Path, model: Path, records: Path, objective: str = "byg", **sections) -> Path:
    """A small TOML recipe for tests; `sections` maps 'table.key' to values."""
    import tomli_w

    tree = {"run": {"dir": str(path.parent / "run"), "seed": 0},
            "model": {"path": str(model), "lora_rank": 4, "lora_alpha": 4},
            "data": {"kind": "records", "path": str(records), "resolution": 32},
            "objective": {"name": objective, **({"rollout_steps": 3, "identity_warmup_steps": 2}
                                                if objective == "byg" else {})},
            "train": {"steps": 20, "batch_size": 2, "lr": 1e-3, "checkpoint_every": 10, "sample_every": 0},
            "sample": {"steps": 2, "count": 2}}
    for key, value in sections.items():
        table, name = key.split(".", 1)
        tree.setdefault(table, {})[name] = value
    path.write_text(tomli_w.dumps(tree))
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_flux, tiny_records) -> Path:
    """A short byg run on the tiny random FLUX (for edit / eval tests)."""
    from byg_cli.recipe import load_recipe
    from byg_cli.train import train

    root = tmp_path_factory.mktemp("tiny-run")
    recipe = write_recipe(root / "r.toml", tiny_flux, tiny_records, "byg", **{"train.steps": 6})
    return train(load_recipe(recipe), quiet=True)


@pytest.fixture(scope="session")
def tiny_flux_vae(tmp_path_factory) -> Path:
    """A tiny random FLUX folder with a tiny AutoencoderKL (instead of the pixel codec), CLIP and T5."""
    from byg_cli.models.registry import quiet_hf
    from byg_cli.models.tiny import TinyFluxSpec, write_tiny_flux

    quiet_hf()
    return write_tiny_flux(tmp_path_factory.mktemp("models") / "tiny-flux-vae", TinyFluxSpec(pixel_patch=0))


def run_main(argv, capsys):
    """The `byg` entry point in this process (as the console script runs it): exit code and stderr."""
    from byg_cli.cli import main

    old = sys.argv
    sys.argv = ["byg", *map(str, argv)]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pytest_collection_modifyitems(config, items):
    """Browser and multi-process tests are always slow, so `-m "not slow"` (the quick run) leaves them out."""
    for item in items:
        if item.get_closest_marker("browser") or item.get_closest_marker("multiproc"):
            item.add_marker(pytest.mark.slow)
