import re

import numpy as np
import pytest

from byg_cli.data.shapes import Attributes
from byg_cli.data.shapes_edits import (
    EDIT_TYPES,
    FORBIDDEN_REVERSE_WORDS,
    PHRASINGS,
    Edit,
    apply_edit,
    edit_for_index,
    make_edit,
    sample_edit,
)

GEOMETRY = ("cx", "cy", "size")


def _all_edits(n=600, split="train"):
    rng = np.random.default_rng(11)
    return [sample_edit(rng, split=split) for _ in range(n)]


def test_every_edit_type_is_sampled_and_changes_exactly_what_it_names():
    edits = _all_edits()
    assert {e.edit_type for e in edits} == set(EDIT_TYPES)
    for e in edits:
        s, t = e.source, e.target
        changed = {k for k in ("shape", "color", "background", "style") if getattr(s, k) != getattr(t, k)}
        if e.edit_type in ("color", "background", "shape", "style"):
            assert changed == {e.edit_type}
            assert all(getattr(s, g) == getattr(t, g) for g in GEOMETRY)
        elif e.edit_type == "add":
            assert not s.has_shape and t.has_shape and s.background == t.background
        else:
            assert s.has_shape and not t.has_shape and s.background == t.background
        assert apply_edit(s, e.edit) == t


def test_instructions_and_captions_name_the_asked_values():
    for e in _all_edits(300):
        if e.edit_type in ("color", "background", "shape"):
            assert getattr(e.target, e.edit_type) in e.instruction
            assert getattr(e.source, e.edit_type) in e.reverse_instruction
        assert e.target.background in e.tgt_caption and e.source.background in e.src_caption
        if e.target.has_shape:
            assert e.target.shape in e.tgt_caption and e.target.color in e.tgt_caption


def test_reverse_instructions_are_self_contained():
    pattern = re.compile(r"\b(" + "|".join(FORBIDDEN_REVERSE_WORDS) + r")", re.IGNORECASE)
    for group in PHRASINGS.values():
        for p in group:
            assert not pattern.search(p.template), p.template
    for split in ("train", "heldout"):
        for e in _all_edits(400, split):
            assert not pattern.search(e.reverse_instruction), e.reverse_instruction
            assert not pattern.search(e.instruction), e.instruction


def test_reverse_instruction_is_the_instruction_of_the_opposite_edit():
    source = Attributes("square", "red", "blue", "filled", 16.0, 16.0, 14)
    e = make_edit(source, Edit("style", {"style": "outlined"}))
    assert "outline" in e.instruction
    assert any(w in e.reverse_instruction for w in ("fill", "solid"))
    e = make_edit(source, Edit("remove"))
    assert "red square" in e.reverse_instruction and e.reverse_instruction.split()[0] in ("add", "draw", "put")


def test_heldout_phrasings_never_appear_in_the_training_split():
    heldout = {p.template for g in PHRASINGS.values() for p in g if p.split == "heldout"}
    train = {p.template for g in PHRASINGS.values() for p in g if p.split == "train"}
    assert heldout and not heldout & train
    for group in PHRASINGS.values():
        assert {p.split for p in group} == {"train", "heldout"}

    def first_words(edits):
        return {" ".join(e.instruction.split()[:2]) for e in edits}

    train_words, heldout_words = first_words(_all_edits(600)), first_words(_all_edits(600, "heldout"))
    assert not {"recolor the", "paint the", "swap the", "take away", "insert a"} & train_words
    assert {"recolor the", "paint the", "swap the"} <= heldout_words
    assert all(e.phrasing_split == "heldout" for e in _all_edits(20, "heldout"))


def test_edit_types_filter_and_determinism():
    rng = np.random.default_rng(0)
    assert {sample_edit(rng, edit_types=["color"]).edit_type for _ in range(20)} == {"color"}
    assert edit_for_index(4, 9) == edit_for_index(4, 9)
    assert edit_for_index(4, 9) != edit_for_index(5, 9)
    with pytest.raises(ValueError, match="unknown edit type"):
        sample_edit(rng, edit_types=["rotate"])


def test_impossible_edits_are_refused():
    source = Attributes("circle", "red", "blue", "filled", 16.0, 16.0, 14)
    with pytest.raises(ValueError, match="same value"):
        apply_edit(source, Edit("color", {"color": "red"}))
    with pytest.raises(ValueError, match="both 'red'"):
        apply_edit(source, Edit("background", {"background": "red"}))
    with pytest.raises(ValueError, match="empty canvas"):
        apply_edit(source, Edit("add", {}))


def test_corpus_holds_every_word_the_world_can_say():
    from byg_cli.data.shapes import caption_for_index
    from byg_cli.data.shapes_edits import shapes_corpus

    words = {w for line in shapes_corpus() for w in line.split()}
    said = [caption_for_index(2, i, empty_fraction=0.3)[1] for i in range(300)]
    for split in ("train", "heldout"):
        for e in _all_edits(500, split):
            said += [e.src_caption, e.tgt_caption, e.instruction, e.reverse_instruction]
    missing = {w for line in said for w in line.split()} - words
    assert not missing
    assert {"an", "outlined", "magenta", "triangle", "recolor", "hollow"} <= words
