"""Writing results: JSON, markdown tables and matplotlib plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from byg_cli.extras import require


def pyplot(extra: str = "eval", what: str = "plotting the results"):
    """matplotlib's pyplot on the Agg backend (files only, never a window); matplotlib comes with `extra`."""
    require("matplotlib", extra, what).use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    return path


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], bold_rows: Sequence[int] = ()) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for i, row in enumerate(rows):
        cells = [f"**{c}**" if i in bold_rows and c else str(c) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grouped_bars(path: Path, categories: Sequence[str], series: dict[str, Sequence[float | None]], *,
                 title: str, ylabel: str, errors: dict[str, Sequence[float | None]] | None = None,
                 horizontal: bool = False) -> Path:
    """One group of bars per category, one bar per series (method or metric), optional error bars."""
    n_series = max(1, len(series))
    width = 0.8 / n_series
    size = (7, max(3.0, 0.45 * len(categories) * max(1, n_series) ** 0.5)) if horizontal else \
        (max(5.0, 0.9 * len(categories) * max(1, n_series) ** 0.5), 4)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=size)
    for i, (name, values) in enumerate(series.items()):
        pos = [k + (i - (n_series - 1) / 2) * width for k in range(len(categories))]
        vals = [float("nan") if v is None else v for v in values]
        err = None
        if errors and name in errors:
            err = [0.0 if e is None or (isinstance(e, float) and math.isnan(e)) else e for e in errors[name]]
        if horizontal:
            ax.barh(pos, vals, height=width, xerr=err, label=name, capsize=2)
        else:
            ax.bar(pos, vals, width=width, yerr=err, label=name, capsize=2)
    if horizontal:
        ax.set_yticks(range(len(categories)), categories)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
    else:
        ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
