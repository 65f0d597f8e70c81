"""User-study statistics against values worked out by hand (see the comments for the arithmetic)."""

import math

import pytest

from byg_cli.study.stats import Vote, analyze_votes, fleiss_kappa_varying, summarize

# rater -> [(item, condition, won)]; items i1, i2 are "cartoon", i3, i4 "photoreal".
HAND_VOTES = {
    "r1": [("i1", "cartoon", True), ("i2", "cartoon", True), ("i3", "photoreal", True), ("i4", "photoreal", False)],
    "r2": [("i1", "cartoon", True), ("i2", "cartoon", True), ("i3", "photoreal", False), ("i4", "photoreal", False)],
    "r3": [("i1", "cartoon", True), ("i2", "cartoon", True)],
}


def hand_votes():
    return [Vote(rater=r, item=i, condition=c, won=w) for r, vs in HAND_VOTES.items() for i, c, w in vs]


def test_win_rate_sem_and_binomial_by_hand():
    s = summarize(hand_votes())
    # 7 wins of 10 votes.
    assert (s["votes"], s["wins"]) == (10, 7)
    assert s["win_rate"] == pytest.approx(0.7)
    # SEM per vote = sqrt(0.7 * 0.3 / 10).
    assert s["sem_per_vote"] == pytest.approx(math.sqrt(0.021))
    # Binomial, two-sided, symmetric at p = 0.5: 2 * P(X >= 7) = 2 * (120 + 45 + 10 + 1) / 1024.
    assert s["binomial_test"]["pvalue_two_sided"] == pytest.approx(352 / 1024)
    assert s["binomial_test"]["pvalue_greater"] == pytest.approx(176 / 1024)
    low, high = s["binomial_test"]["ci95_wilson"]
    assert low < 0.7 < high


def test_per_rater_rates_and_sign_test_by_hand():
    pr = summarize(hand_votes())["per_rater"]
    # r1 = 3/4, r2 = 2/4, r3 = 2/2.
    assert {r: v["win_rate"] for r, v in pr["rates"].items()} == {"r1": 0.75, "r2": 0.5, "r3": 1.0}
    assert pr["mean_win_rate"] == pytest.approx(0.75)
    # sd (ddof=1) = sqrt((0 + 0.25^2 + 0.25^2) / 2) = 0.25; SEM = 0.25 / sqrt(3).
    assert pr["sem_per_rater"] == pytest.approx(0.25 / math.sqrt(3))
    assert (pr["prefer_ours"], pr["prefer_other"], pr["tied"]) == (2, 0, 1)
    # Sign test over the 2 untied raters, both for ours: 2 * (1/2)^2.
    assert pr["sign_test"]["pvalue_two_sided"] == pytest.approx(0.5)
    assert (pr["min_win_rate"], pr["max_win_rate"]) == (0.5, 1.0)


def test_majority_vote_sign_test_by_hand():
    mv = summarize(hand_votes())["majority_vote"]
    # i1 3-0 ours, i2 3-0 ours, i3 1-1 tie, i4 0-2 other.
    assert (mv["items"], mv["ours"], mv["other"], mv["tied"]) == (4, 2, 1, 1)
    # 2 of 3 untied: two-sided p = min(1, 2 * P(X >= 2)) = min(1, 2 * 4/8) = 1.
    assert mv["sign_test"]["pvalue_two_sided"] == pytest.approx(1.0)


def test_kappa_of_the_hand_votes():
    ag = summarize(hand_votes())["agreement"]
    # counts [ours, other]: i1 [3,0], i2 [3,0], i3 [1,1], i4 [0,2] (3, 3, 2, 2 raters).
    # P_i = 1, 1, 0, 2/2 = 1 -> P_a = 3/4.
    # pi_ours = mean(1, 1, 1/2, 0) = 5/8, pi_other = 3/8 -> P_e = 25/64 + 9/64 = 34/64.
    # kappa = (48/64 - 34/64) / (30/64) = 14/30 = 7/15 (the pooled-marginal variant would give 0.405).
    assert ag["observed"] == pytest.approx(0.75)
    assert ag["chance"] == pytest.approx(34 / 64)
    assert ag["kappa"] == pytest.approx(7 / 15)
    # Randolph: (3/4 - 1/2) / (1/2).
    assert ag["free_marginal_kappa"] == pytest.approx(0.5)
    assert ag["items_used"] == 4


def test_kappa_unequal_raters_with_a_singleton_item_by_hand():
    # 4 items rated by 3, 2, 4 and 1 raters.
    counts = [[3, 0], [1, 1], [1, 3], [1, 0]]
    k = fleiss_kappa_varying(counts)
    # P_i over items with >= 2 ratings: 6/6 = 1, 0/2 = 0, (0 + 6)/12 = 1/2 -> P_a = 1/2.
    assert k["observed"] == pytest.approx(0.5)
    assert k["items_used"] == 3
    # pi over all 4 rated items: ours = (1 + 1/2 + 1/4 + 1)/4 = 11/16, other = 5/16 -> P_e = 146/256.
    assert k["chance"] == pytest.approx(146 / 256)
    # kappa = (128/256 - 146/256) / (110/256) = -18/110 = -9/55.
    assert k["kappa"] == pytest.approx(-9 / 55)


def test_kappa_equal_raters_matches_fleiss_1971_worked_example():
    # The 10 subjects x 14 raters x 5 categories example used to illustrate Fleiss' kappa: kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
    k = fleiss_kappa_varying(table)
    assert k["observed"] == pytest.approx(0.378, abs=5e-4)  # sum of P_i = 3.780
    assert k["chance"] == pytest.approx(0.213, abs=5e-4)
    assert k["kappa"] == pytest.approx(0.210, abs=5e-4)


def test_kappa_edge_cases():
    assert fleiss_kappa_varying([[1, 0], [0, 1]])["kappa"] is None  # no item with two ratings
    assert fleiss_kappa_varying([[3, 0], [2, 0]])["kappa"] is None  # P_e = 1: undefined
    assert fleiss_kappa_varying([[2, 0], [0, 2]])["kappa"] == pytest.approx(1.0)  # perfect agreement
    with pytest.raises(ValueError):
        fleiss_kappa_varying([[1, 1], [1, 1, 0]])


def test_statistics_per_condition():
    result = analyze_votes(hand_votes())
    assert list(result["conditions"]) == ["cartoon", "photoreal"]
    cartoon, photoreal = result["conditions"]["cartoon"], result["conditions"]["photoreal"]
    # cartoon: 6 of 6 votes for ours, SEM 0; two-sided binomial 2 / 2^6.
    assert (cartoon["votes"], cartoon["wins"], cartoon["sem_per_vote"]) == (6, 6, 0.0)
    assert cartoon["binomial_test"]["pvalue_two_sided"] == pytest.approx(2 / 64)
    # photoreal: r1 1/2, r2 0/2 -> 1 of 4; rater rates 0.5 and 0, mean 0.25,
    # sd (ddof=1) = sqrt(2 * 0.25^2 / 1) = sqrt(0.125), SEM = sqrt(0.125) / sqrt(2) = 0.25.
    assert (photoreal["votes"], photoreal["wins"]) == (4, 1)
    assert photoreal["per_rater"]["mean_win_rate"] == pytest.approx(0.25)
    assert photoreal["per_rater"]["sem_per_rater"] == pytest.approx(0.25)
    assert photoreal["per_rater"]["prefer_other"] == 1 and photoreal["per_rater"]["tied"] == 1
    assert result["overall"]["votes"] == 10
