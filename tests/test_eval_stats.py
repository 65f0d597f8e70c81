"""Mean ± SEM and the macro average, against numbers worked out by hand."""

import math

import pytest

from byg_cli.eval.stats import macro_average, mean_sem


def test_sem_by_hand():
    # values 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sum of squared deviations 32, sample var 32/7
    r = mean_sem([2, 4, 4, 4, 5, 5, 7, 9])
    assert r.mean == pytest.approx(5.0)
    assert r.sem == pytest.approx(math.sqrt(32 / 7) / math.sqrt(8))
    assert r.n == 8 and r.format(2) == "5.00 ± 0.76"


def test_sem_of_a_binary_metric_is_sqrt_p_q_over_n_minus_1():
    r = mean_sem([1, 1, 1, 0])  # p = 3/4
    assert r.sem == pytest.approx(math.sqrt(0.75 * 0.25 / 3))


def test_sem_edge_cases():
    assert math.isnan(mean_sem([3.0]).sem) and mean_sem([3.0]).mean == 3.0
    empty = mean_sem([])
    assert empty.n == 0 and empty.format() == "n/a" and empty.to_dict() == {"mean": None, "sem": None, "n": 0}


def test_macro_average_is_the_mean_of_category_means_not_of_samples():
    # category a: samples 10, 10, 10, 10 (mean 10); category b: one sample 0 (mean 0)
    cats = {"a": 10.0, "b": 0.0}
    assert macro_average(cats) == pytest.approx(5.0)  # the pooled sample mean would be 8
    assert macro_average({"a": 6.0, "b": float("nan"), "c": 2.0}) == pytest.approx(4.0)
    assert math.isnan(macro_average({}))
