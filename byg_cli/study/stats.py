"""User-study statistics for a two-method forced-choice study (section 5.1.1 of the paper).

A vote is (rater, item, condition, won) where `won` is True when the rater chose the reported method ("ours").
Everything is computed per condition and over all votes:

- win rate p = W/N with SEM per vote sqrt(p(1-p)/N) (treats votes as independent) and SEM per rater
  sd(p_r)/sqrt(R) (ddof=1) around the mean of the per-rater rates p_r;
- a binomial test of W out of N against p = 0.5 (scipy), with a Wilson 95 % interval;
- per-rater preference: how many raters have p_r > 0.5 / < 0.5 / = 0.5, and a sign test over the untied raters;
- majority vote per item (ties dropped) and a sign test over the untied items;
- Fleiss' kappa generalised to a varying number of raters per item (`fleiss_kappa_varying`), and Randolph's
  free-marginal kappa beside it (it does not suffer the "kappa paradox" when one method wins most votes).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from scipy.stats import binomtest


@dataclass(frozen=True)
class Vote:
    rater: str
    item: str
    condition: str
    won: bool


def _binom(k: int, n: int) -> dict | None:
    if n == 0:
        return None
    test = binomtest(k, n, p=0.5, alternative="two-sided")
    ci = test.proportion_ci(confidence_level=0.95, method="wilson")
    return {
        "successes": k,
        "trials": n,
        "pvalue_two_sided": float(test.pvalue),
        "pvalue_greater": float(binomtest(k, n, p=0.5, alternative="greater").pvalue),
        "ci95_wilson": [float(ci.low), float(ci.high)],
    }


def fleiss_kappa_varying(counts: Sequence[Sequence[int]]) -> dict:
    """Fleiss' kappa for items rated by different numbers of raters, Gwet's generalisation.

    `counts[i][k]` is how many raters put item i in category k; n_i = sum_k counts[i][k] may differ per item.
    This follows Gwet (Handbook of Inter-Rater Reliability; R package irrCAC, `fleiss.kappa.raw`):

    - observed agreement: P_i = sum_k n_ik (n_ik - 1) / (n_i (n_i - 1)) over the items with n_i >= 2,
      and P_a = the mean of those P_i;
    - chance agreement: pi_k = the mean over all items with n_i >= 1 of n_ik / n_i, and P_e = sum_k pi_k^2;
    - kappa = (P_a - P_e) / (1 - P_e).

    With equal n_i this is Fleiss' (1971) kappa. Items with one rating add to pi_k but not to P_a.
    Also returns Randolph's free-marginal kappa, (P_a - 1/q) / (1 - 1/q) for q categories.
    Values that are undefined (no item with two ratings, or P_e = 1) are None.
    """
    rows = [list(map(int, r)) for r in counts if sum(r) >= 1]
    if not rows:
        return {"kappa": None, "free_marginal_kappa": None, "observed": None, "chance": None, "items_used": 0}
    q = len(rows[0])
    if q < 2 or any(len(r) != q for r in rows):
        raise ValueError("every row of counts needs the same number (>= 2) of categories")
    agreements = []
    for r in rows:
        n = sum(r)
        if n >= 2:
            agreements.append(sum(c * (c - 1) for c in r) / (n * (n - 1)))
    pi = [sum(r[k] / sum(r) for r in rows) / len(rows) for k in range(q)]
    p_e = sum(p * p for p in pi)
    if not agreements:
        return {"kappa": None, "free_marginal_kappa": None, "observed": None, "chance": p_e, "items_used": 0}
    p_a = sum(agreements) / len(agreements)
    kappa = None if math.isclose(p_e, 1.0) else (p_a - p_e) / (1 - p_e)
    return {
        "kappa": kappa,
        "free_marginal_kappa": (p_a - 1 / q) / (1 - 1 / q),
        "observed": p_a,
        "chance": p_e,
        "items_used": len(agreements),
    }


def summarize(votes: Sequence[Vote]) -> dict:
    """All statistics for one group of votes (one condition, or all of them)."""
    n = len(votes)
    wins = sum(v.won for v in votes)
    p = wins / n if n else None
    out: dict = {
        "votes": n,
        "wins": wins,
        "win_rate": p,
        "sem_per_vote": math.sqrt(p * (1 - p) / n) if n else None,
        "binomial_test": _binom(wins, n),
    }

    by_rater: dict[str, list[bool]] = defaultdict(list)
    for v in votes:
        by_rater[v.rater].append(v.won)
    rates = {r: sum(w) / len(w) for r, w in sorted(by_rater.items())}
    values = list(rates.values())
    mean_rate = sum(values) / len(values) if values else None
    sem_rater = None
    if len(values) >= 2:
        sd = math.sqrt(sum((x - mean_rate) ** 2 for x in values) / (len(values) - 1))
        sem_rater = sd / math.sqrt(len(values))
    prefer_ours = sum(x > 0.5 for x in values)
    prefer_other = sum(x < 0.5 for x in values)
    out["per_rater"] = {
        "raters": len(values),
        "mean_win_rate": mean_rate,
        "sem_per_rater": sem_rater,
        "min_win_rate": min(values) if values else None,
        "max_win_rate": max(values) if values else None,
        "rates": {r: {"votes": len(by_rater[r]), "wins": sum(by_rater[r]), "win_rate": rates[r]} for r in rates},
        "prefer_ours": prefer_ours,
        "prefer_other": prefer_other,
        "tied": len(values) - prefer_ours - prefer_other,
        "sign_test": _binom(prefer_ours, prefer_ours + prefer_other),
    }

    by_item: dict[str, list[bool]] = defaultdict(list)
    for v in votes:
        by_item[v.item].append(v.won)
    item_ours = sum(sum(w) > len(w) - sum(w) for w in by_item.values())
    item_other = sum(sum(w) < len(w) - sum(w) for w in by_item.values())
    out["majority_vote"] = {
        "items": len(by_item),
        "ours": item_ours,
        "other": item_other,
        "tied": len(by_item) - item_ours - item_other,
        "sign_test": _binom(item_ours, item_ours + item_other),
    }
    out["agreement"] = fleiss_kappa_varying([[sum(w), len(w) - sum(w)] for w in by_item.values()])
    return out


def analyze_votes(votes: Iterable[Vote]) -> dict:
    """Statistics per condition (`conditions`, sorted by name) and over all votes (`overall`)."""
    votes = list(votes)
    groups: dict[str, list[Vote]] = defaultdict(list)
    for v in votes:
        groups[v.condition].append(v)
    return {
        "conditions": {cond: summarize(groups[cond]) for cond in sorted(groups)},
        "overall": summarize(votes),
    }
