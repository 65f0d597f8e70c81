import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from byg_cli.data.dataset import EditDataset, ShapesCaptionStream, ShapesEditStream, load_pixels
from byg_cli.data.records import read_records
from byg_cli.data.shapes import Attributes, render
from byg_cli.data.shapes_dataset import write_shapes_dataset
from byg_cli.data.shapes_reader import read_attributes
from byg_cli.errors import BygError


def test_written_dataset_loads_back_through_the_training_dataset(tmp_path):
    meta = write_shapes_dataset(tmp_path / "shapes", count=24, seed=1)
    records = read_records(meta)
    assert len(records) == 24 and len({r.extra["id"] for r in records}) == 24
    ds = EditDataset(meta, size=32)
    batch = next(iter(DataLoader(ds, batch_size=8)))
    assert batch["pixels"].shape == (8, 3, 32, 32) and batch["target_pixels"].shape == (8, 3, 32, 32)
    assert batch["pixels"].min() >= -1 and batch["pixels"].max() <= 1
    for i, rec in enumerate(records):
        item = ds[i]
        src = Attributes.from_json(rec.extra["src_attributes"])
        tgt = Attributes.from_json(rec.extra["tgt_attributes"])
        # the pixels the trainer sees are the attributes the record states, read back exactly
        assert read_attributes(item["pixels"]) == src and read_attributes(item["target_pixels"]) == tgt
        assert item["instruction"] == rec.instruction and item["edit_type"] == rec.edit_type
        assert rec.extra["phrasing_split"] == "train"


def test_stream_item_i_is_record_i_and_start_resumes_the_stream(tmp_path):
    meta = write_shapes_dataset(tmp_path / "d", count=6, seed=9)
    ds = EditDataset(meta)
    stream = ShapesEditStream(seed=9)
    for i in range(6):
        assert torch.equal(stream.item(i)["pixels"], ds[i]["pixels"])
        assert stream.item(i)["instruction"] == ds[i]["instruction"]
    it = iter(ShapesEditStream(seed=9))
    first = [next(it) for _ in range(5)]
    resumed = next(iter(ShapesEditStream(seed=9, start=3)))
    assert resumed["index"] == 3 and resumed["src_caption"] == first[3]["src_caption"]
    assert torch.equal(resumed["target_pixels"], first[3]["target_pixels"])
    only_colour = ShapesEditStream(seed=1, edit_types=["color"])
    assert {only_colour.item(i)["edit_type"] for i in range(10)} == {"color"}


def test_caption_stream_batches_and_resumes():
    loader = DataLoader(ShapesCaptionStream(seed=2, size=32), batch_size=4)
    batch = next(iter(loader))
    assert batch["pixels"].shape == (4, 3, 32, 32) and len(batch["caption"]) == 4
    again = next(iter(ShapesCaptionStream(seed=2, start=2)))
    assert again["caption"] == batch["caption"][2] and torch.equal(again["pixels"], batch["pixels"][2])


def test_rerun_resumes_without_duplicates_and_extends(tmp_path):
    out = tmp_path / "d"
    meta = write_shapes_dataset(out, count=10, seed=4)
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(lines[:6]) + "\n")  # as if killed after 6 records
    write_shapes_dataset(out, count=15, seed=4)
    ids = [json.loads(line)["id"] for line in meta.read_text().splitlines()]
    assert sorted(ids) == [f"{i:06d}" for i in range(15)]
    again = {json.loads(line)["id"]: json.loads(line) for line in meta.read_text().splitlines()}
    assert again["000003"]["src_attributes"] == json.loads(lines[3])["src_attributes"]
    with pytest.raises(BygError, match="seed 4 -> 5"):
        write_shapes_dataset(out, count=15, seed=5)


def test_heldout_split_and_bad_input(tmp_path):
    meta = write_shapes_dataset(tmp_path / "h", count=5, seed=0, edit_types=["shape"], split="heldout")
    recs = read_records(meta)
    assert {r.edit_type for r in recs} == {"shape"} and {r.extra["phrasing_split"] for r in recs} == {"heldout"}
    with pytest.raises(BygError, match="rotate"):
        write_shapes_dataset(tmp_path / "x", count=5, seed=0, edit_types=["rotate"])
    with pytest.raises(BygError, match="--split"):
        write_shapes_dataset(tmp_path / "x", count=5, seed=0, split="test")


def test_edit_dataset_reads_real_image_records_and_resizes(tmp_path):
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(tmp_path / "photo.jpg")
    (tmp_path / "m.jsonl").write_text(json.dumps({
        "image": "photo.jpg", "src_caption": "a grey wall", "instruction": "make the wall red",
        "tgt_caption": "a red wall", "reverse_instruction": "make the wall grey", "edit_type": "color"}) + "\n")
    item = EditDataset(tmp_path / "m.jsonl", size=16)[0]
    assert item["pixels"].shape == (3, 16, 16) and "target_pixels" not in item
    with pytest.raises(BygError, match="cannot read image"):
        (tmp_path / "bad.png").write_text("not a png")
        load_pixels(tmp_path / "bad.png")
    assert render(Attributes(None, None, "red", None)).shape == (32, 32, 3)


def test_stream_workers_share_the_indices_without_overlap():
    loader = DataLoader(ShapesEditStream(seed=3, start=10), batch_size=4, num_workers=2)
    it = iter(loader)
    seen = [int(i) for _ in range(2) for i in next(it)["index"]]
    assert sorted(seen) == list(range(10, 18))
