"""The shapes base's learning curve across its pretraining stages: shape type and crisp (and the other
attributes) against samples seen, from stages.json beside this script, with the bar of issue #19, and the straight
line in log(samples) through each of shape type and crisp (its slope a doubling, where it crosses its bar).

Run: python examples/reports/shapes_base/plot_stages.py   (writes stages.png beside it, prints the fits)
"""

import json
import math
from pathlib import Path

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
BARS = {"shape": 90.0, "crisp": 50.0}


def fit(samples: list[float], scores: list[float], bar: float) -> dict:
    """Least squares score = a + b log2(samples): b is the gain a doubling; `at_bar` the samples where it reaches
    the bar; `worst_residual` how far the farthest stage lies from the line."""
    x = np.log2(np.asarray(samples))
    y = np.asarray(scores)
    b, a = np.polyfit(x, y, 1)
    return {"per_doubling": float(b), "at_bar": float(2 ** ((bar - a) / b)) if b > 0 else math.inf,
            "worst_residual": float(np.abs(y - (a + b * x)).max()), "a": float(a), "b": float(b)}


def main() -> None:
    stages = json.loads((HERE / "stages.json").read_text())["stages"]
    samples = [s["samples"] / 1e6 for s in stages]
    fig, ax = plt.subplots(figsize=(8.0, 4.0))
    for key, style in (("shape", "o-"), ("crisp", "s-"), ("style", "^--"), ("color", "v--")):
        ax.plot(samples, [s["scores"][key] for s in stages], style, label=key, alpha=1 if key in ("shape", "crisp")
                else 0.5)
    lines = {key: fit(samples, [s["scores"][key] for s in stages], bar) for key, bar in BARS.items()}
    for key, line in lines.items():
        reach = max(samples[-1], min(line["at_bar"], 10 * samples[-1]))
        xs = np.geomspace(samples[0], reach, 50)
        ax.plot(xs, line["a"] + line["b"] * np.log2(xs), ":", color="black", lw=0.7,
                label="straight line in log samples" if key == "shape" else None)
        print(f"{key}: {line['per_doubling']:+.1f} points a doubling (stages within {line['worst_residual']:.1f}"
              f" points of the line); {BARS[key]:.0f}% near {line['at_bar']:.1f} M samples")
    split = [(x, s["scores"]) for x, s in zip(samples, stages) if "crisp_filled" in s["scores"]]
    for key, marker in (("crisp_filled", "s"), ("crisp_outlined", "D")):
        ax.plot([x for x, _ in split], [sc[key] for _, sc in split], marker + "--", color="tab:orange", alpha=0.45,
                ms=3.5, lw=0.9, label=key.replace("_", ": "))
    ax.axhline(90, color="grey", lw=0.8, ls=":")
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.text(samples[0], 91, "bar: attributes 90%", fontsize=7, color="grey")
    ax.text(samples[0], 51, "bar: crisp 50%", fontsize=7, color="grey")
    ax.set_xscale("log")
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8) if samples[0] / 2 <= t <= 2 * ax.get_xlim()[1]]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training samples seen (millions, log scale)")
    ax.set_ylabel("% of 500 samples read back right")
    ax.set_ylim(0, 100)
    for s, x in zip(stages, samples):
        ax.annotate(f"stage {s['stage']}\n{s['cpu_minutes']} min", (x, s["scores"]["shape"]), fontsize=6,
                    textcoords="offset points", xytext=(4, -14))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("examples/shapes-base, stage by stage", fontsize=9)
    fig.tight_layout()
    fig.savefig(HERE / "stages.png", dpi=120)
    print(f"wrote {HERE / 'stages.png'}")


if __name__ == "__main__":
    main()
