"""The category sampler: 1,000 simulated draws land within 3 points of the target shares (the priorities,
normalised), whatever the simulated VLM's own taste among the offered categories."""

import random

import pytest

from byg_cli.makedata.sampler import CategorySampler, image_rng
from byg_cli.makedata.taxonomy import EDIT_TYPES, target_shares

PREFERENCE = [t.key for t in EDIT_TYPES]
TASTE = {key: 3.0 - 2.0 * i / (len(PREFERENCE) - 1) for i, key in enumerate(PREFERENCE)}  # 3x .. 1x


def uniform(allowed, rng):
    return rng.choice(allowed)


def first_offered(allowed, rng):
    return allowed[0]


def biased(allowed, rng):  # likes some categories three times as much as others
    return rng.choices(allowed, weights=[TASTE[c] for c in allowed])[0]


def shy_of_text(allowed, rng):  # most answers fail when text manipulation is offered (few images have text)
    if "text_manipulation" in allowed and rng.random() < 0.7:
        return None
    return rng.choice(allowed)


def simulate(chooser, seed, draws=1000, balance=True):
    sampler = CategorySampler(balance=balance)
    vlm = random.Random(seed + 1000)
    for i in range(draws):
        allowed = sampler.draw(image_rng(seed, f"images/{i:05d}.jpg"), 3)
        assert len(set(allowed)) == 3
        choice = chooser(allowed, vlm)
        if choice:
            sampler.record(choice)
    return sampler


def test_target_shares_are_normalised_priorities_with_remove_and_replace_over_sampled():
    shares = target_shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["remove"] == shares["replace"] > shares["color_change"] == shares["text_manipulation"]


@pytest.mark.parametrize("chooser", [uniform, first_offered, biased, shy_of_text])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balance_within_three_points_over_1000_draws(chooser, seed):
    sampler = simulate(chooser, seed)
    shares, target = sampler.shares(), target_shares()
    worst = max(abs(shares[k] - target[k]) for k in target)
    assert worst <= 0.03, {k: round(shares[k] - target[k], 3) for k in target}


def test_without_balancing_a_biased_vlm_drifts_off_target():
    # The same biased VLM with balancing off misses the targets: the balancing term does real work.
    sampler = simulate(biased, 0, balance=False)
    shares, target = sampler.shares(), target_shares()
    assert max(abs(shares[k] - target[k]) for k in target) > 0.03


def test_draws_depend_only_on_seed_path_and_usage():
    a, b = CategorySampler(), CategorySampler()
    assert a.draw(image_rng(7, "x/a.jpg"), 3) == b.draw(image_rng(7, "x/a.jpg"), 3)
    draws = {tuple(a.draw(image_rng(s, "x/a.jpg"), 3)) for s in range(20)}
    assert len(draws) > 5  # the seed matters
    for _ in range(50):
        b.record("color_change")
    assert "color_change" not in b.draw(image_rng(7, "x/a.jpg"), 3) or b.weights()["color_change"] < 0.1
