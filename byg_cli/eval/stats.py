"""Summary statistics shared by every benchmark: mean ± SEM and the macro average of category means."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
from scipy import stats as _scipy_stats


@dataclass(frozen=True)
class MeanSem:
    mean: float
    sem: float  # standard error of the mean (ddof=1); NaN with fewer than two values
    n: int

    def to_dict(self) -> dict:
        return {"mean": _finite_or_none(self.mean), "sem": _finite_or_none(self.sem), "n": self.n}

    def format(self, digits: int = 3) -> str:
        if self.n == 0:
            return "n/a"
        if math.isnan(self.sem):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.sem:.{digits}f}"


def _finite_or_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def mean_sem(values: Iterable[float]) -> MeanSem:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n), as `scipy.stats.sem`)."""
    arr = np.asarray([float(v) for v in values], dtype=np.float64)
    if arr.size == 0:
        return MeanSem(float("nan"), float("nan"), 0)
    sem = float(_scipy_stats.sem(arr, ddof=1)) if arr.size > 1 else float("nan")
    return MeanSem(float(arr.mean()), sem, int(arr.size))


def macro_average(category_means: Mapping[str, float]) -> float:
    """Unweighted mean of per-category means (GEdit-Bench's "Average"); NaN categories are left out."""
    finite = [float(v) for v in category_means.values() if v is not None and not math.isnan(float(v))]
    return float(np.mean(finite)) if finite else float("nan")
