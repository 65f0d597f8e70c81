"""The shapes base's learning curve across its pretraining stages: shape type and crisp (and the other
attributes) against samples seen, from stages.json beside this script, with the bar of issue #19.

Run: python examples/reports/shapes_base/plot_stages.py   (writes stages.png beside it)
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    stages = json.loads((HERE / "stages.json").read_text())["stages"]
    samples = [s["samples"] / 1e6 for s in stages]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key, style in (("shape", "o-"), ("crisp", "s-"), ("style", "^--"), ("color", "v--")):
        ax.plot(samples, [s["scores"][key] for s in stages], style, label=key, alpha=1 if key in ("shape", "crisp")
                else 0.5)
    ax.axhline(90, color="grey", lw=0.8, ls=":")
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.text(samples[0], 91, "bar: attributes 90%", fontsize=7, color="grey")
    ax.text(samples[0], 51, "bar: crisp 50%", fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("training samples seen (millions, log scale)")
    ax.set_ylabel("% of 500 samples read back right")
    ax.set_ylim(0, 100)
    for s, x in zip(stages, samples):
        ax.annotate(f"stage {s['stage']}\n{s['cpu_minutes']} min", (x, s["scores"]["shape"]), fontsize=6,
                    textcoords="offset points", xytext=(4, -14))
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("examples/shapes-base, stage by stage", fontsize=9)
    fig.tight_layout()
    fig.savefig(HERE / "stages.png", dpi=120)
    print(f"wrote {HERE / 'stages.png'}")


if __name__ == "__main__":
    main()
