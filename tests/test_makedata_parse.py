"""The answer parser and the rules of appendix D.1 on a corpus of messy VLM answers."""

import json

import pytest

from byg_cli.makedata.parse import Rejected, extract_json_object, parse_answer

ALLOWED = ["color_change", "remove", "style_change"]
GOOD = {
    "edit_type": "color_change",
    "src_caption": "A red car parked on a quiet street.",
    "instruction": "Change the car color to blue.",
    "tgt_caption": "A blue car parked on a quiet street.",
    "reverse_instruction": "Change the car color to red.",
}
G = json.dumps(GOOD)


def with_(**changes):
    return json.dumps({**GOOD, **changes})


ACCEPTED = {
    "plain": G,
    "fenced json": f"```json\n{G}\n```",
    "fenced no language": f"```\n{G}\n```",
    "prose around": f"Sure! Looking at the image, I chose a color edit.\n{G}\nLet me know if you need more.",
    "fence inside prose": f"Here you go:\n\n```json\n{json.dumps(GOOD, indent=2)}\n```\nThe car is prominent.",
    "trailing commas": G[:-1] + ",}",
    "trailing comma in pretty print": json.dumps(GOOD, indent=2)[:-2] + ",\n}",
    "single quotes": "{" + ", ".join(f"'{k}': '{v}'" for k, v in GOOD.items()) + "}",
    "object in a list": f"[{G}]",
    "thinking model": "<think>Maybe remove the tree? {not json} No, the car.</think>\n" + G,
    "title-case edit type": with_(edit_type="Color change"),
    "alias edit type": with_(edit_type="color"),
    "quoted sign text is content": with_(edit_type="color_change", tgt_caption='A blue sign that reads "NO PARKING NOW".'),
    "extra keys": with_(confidence=0.9),
    "word containing now": with_(tgt_caption="A blue car on a snowy street near a known landmark."),
}

REJECTED = {
    "no json at all": ("The image shows a car.", "no JSON object"),
    "empty answer": ("", "no JSON object"),
    "cut off": (G[:60], "never closed"),
    "two objects": (G + "\n" + G, "2 JSON objects"),
    "list of two": (f"[{G}, {G}]", "2 JSON objects"),
    "a string": ('"just text"', "no JSON object"),
    "a list of strings": ('["a", "b"]', "not an object"),
    "missing field": (json.dumps({k: v for k, v in GOOD.items() if k != "reverse_instruction"}),
                      "missing field(s): reverse_instruction"),
    "missing two": (json.dumps({"edit_type": "remove", "instruction": "x", "src_caption": "y"}),
                    "missing field(s): tgt_caption, reverse_instruction"),
    "not a string": (with_(tgt_caption=["a", "b"]), "not a string: tgt_caption"),
    "empty field": (with_(instruction="   "), "empty field(s): instruction"),
    "unknown edit type": (with_(edit_type="zoom"), "not one of the taxonomy"),
    "type not allowed": (with_(edit_type="background_change"), "not among the allowed"),
    "restore": (with_(reverse_instruction="Restore the car's red color."), "'restore'"),
    "revert": (with_(reverse_instruction="Revert the color change."), "'revert'"),
    "undo": (with_(reverse_instruction="Undo the edit."), "'undo'"),
    "original": (with_(reverse_instruction="Make the car its Original color, red."), "'original'"),
    "back to": (with_(reverse_instruction="Change the car back to red."), "'back to'"),
    "now": (with_(tgt_caption="The car is now blue."), "temporal language ('now')"),
    "changed to": (with_(tgt_caption="A car whose color changed to blue."), "temporal language ('changed to')"),
    "has been": (with_(tgt_caption="The car has been painted blue."), "temporal language ('has been')"),
    "no longer": (with_(tgt_caption="The car is no longer red."), "temporal language ('no longer')"),
    "without": (with_(edit_type="remove", tgt_caption="A quiet street without a car."), "negative phrasing ('without')"),
    "no X": (with_(edit_type="remove", tgt_caption="A quiet street with no cars."), "negative phrasing ('no')"),
    "same captions": (with_(tgt_caption=GOOD["src_caption"]), "same as src_caption"),
    "same instructions": (with_(reverse_instruction=GOOD["instruction"]), "same as instruction"),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted(name):
    edit = parse_answer(ACCEPTED[name], ALLOWED)
    assert edit.edit_type == "color_change"
    assert edit.instruction == GOOD["instruction"]
    assert edit.reverse_instruction == GOOD["reverse_instruction"]


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_with_reason(name):
    answer, reason = REJECTED[name]
    with pytest.raises(Rejected) as info:
        parse_answer(answer, ALLOWED)
    assert reason in str(info.value), str(info.value)


def test_forced_photorealistic_needs_a_photo():
    style = dict(GOOD, edit_type="style_change", src_caption="A watercolor painting of a red car.",
                 reverse_instruction="Turn the image into a watercolor painting.")
    ok = dict(style, instruction="Turn the image into a photorealistic photograph.",
              tgt_caption="A photograph of a red car on a quiet street.")
    assert parse_answer(json.dumps(ok), ["style_change"], force_photorealistic=True).edit_type == "style_change"
    bad = dict(style, instruction="Turn the image into an oil painting.", tgt_caption="An oil painting of a red car.")
    with pytest.raises(Rejected, match="photorealistic"):
        parse_answer(json.dumps(bad), ["style_change"], force_photorealistic=True)


def test_whitespace_is_normalised_and_fences_preferred_over_prose_braces():
    answer = "I considered {a remove edit}.\n```json\n" + with_(instruction="Change   the car\ncolor to blue.") + "\n```"
    assert extract_json_object(answer)["edit_type"] == "color_change"
    assert parse_answer(answer, ALLOWED).instruction == "Change the car color to blue."
