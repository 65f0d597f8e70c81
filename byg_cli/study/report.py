"""`byg user-study analyze`: read the votes, compute the statistics, write JSON + markdown + a bar chart PNG."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from byg_cli.errors import BygError
from byg_cli.study import db
from byg_cli.study.stats import Vote, analyze_votes

OURS_COLOR = "#2a7ab0"
OTHER_COLOR = "#d9822b"


@dataclass(frozen=True)
class Analysis:
    ours: str
    other: str
    result: dict
    json_path: Path
    markdown_path: Path
    chart_path: Path
    markdown: str


def load_votes(db_path: Path, ours: str | None) -> tuple[str, str, list[Vote]]:
    conn = db.connect(db_path)
    try:
        methods = db.method_names(conn)
        rows = db.all_votes(conn)
    finally:
        conn.close()
    ours = methods[0] if ours is None else ours
    if ours not in methods:
        raise BygError(f"--ours {ours!r}: not a method of {db_path} (methods: {', '.join(methods)})")
    other = next(m for m in methods if m != ours)
    votes = [Vote(rater=r.rater, item=r.item, condition=r.condition, won=r.chosen == ours) for r in rows]
    return ours, other, votes


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _p(test: dict | None) -> str:
    return "–" if test is None else f"{test['pvalue_two_sided']:.3g}"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def to_markdown(ours: str, other: str, result: dict) -> str:
    rows = list(result["conditions"].items()) + [("**overall**", result["overall"])]
    lines = [
        f"# User study: {ours} vs {other}",
        "",
        f"Win rate of **{ours}** (share of votes choosing it over {other}); ± is the SEM. p-values are two-sided.",
        "",
        "| condition | votes | win rate ± SEM (vote) | mean rater rate ± SEM (rater) | binomial p "
        f"| raters preferring {ours} / {other} / tied | sign test p (raters) "
        f"| majority items {ours} / {other} / tied | sign test p (items) | Fleiss κ (items ≥2 raters) "
        "| free-marginal κ |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in rows:
        pr, mv, ag = s["per_rater"], s["majority_vote"], s["agreement"]
        lines.append(
            f"| {name} | {s['votes']} | {_pct(s['win_rate'])} ± {_pct(s['sem_per_vote'])} "
            f"| {_pct(pr['mean_win_rate'])} ± {_pct(pr['sem_per_rater'])} | {_p(s['binomial_test'])} "
            f"| {pr['prefer_ours']} / {pr['prefer_other']} / {pr['tied']} | {_p(pr['sign_test'])} "
            f"| {mv['ours']} / {mv['other']} / {mv['tied']} | {_p(mv['sign_test'])} "
            f"| {_num(ag['kappa'])} ({ag['items_used']}) | {_num(ag['free_marginal_kappa'])} |"
        )
    lines += ["", "## Per rater (all conditions)", "", "| rater | votes | win rate |", "|---|---|---|"]
    for rater, r in result["overall"]["per_rater"]["rates"].items():
        lines.append(f"| {rater} | {r['votes']} | {_pct(r['win_rate'])} |")
    return "\n".join(lines) + "\n"


def bar_chart(ours: str, other: str, result: dict, path: Path) -> None:
    """Horizontal 100 % bars per condition (and overall): ours from the left, the other method from the right,
    with the per-vote SEM as an error bar at the boundary, in the manner of the paper's Figure 3."""
    from byg_cli.eval.report import pyplot

    plt = pyplot("study", "byg user-study analyze")

    groups = list(result["conditions"].items()) + [("overall", result["overall"])]
    names = [f"{name}\n(n={s['votes']})" for name, s in groups]
    rates = [s["win_rate"] for _, s in groups]
    sems = [s["sem_per_vote"] for _, s in groups]
    y = list(range(len(groups)))[::-1]

    fig, ax = plt.subplots(figsize=(8, 0.8 * len(groups) + 1.6), dpi=120)
    ax.barh(y, [100 * r for r in rates], color=OURS_COLOR, label=ours, height=0.6)
    ax.barh(y, [100 * (1 - r) for r in rates], left=[100 * r for r in rates], color=OTHER_COLOR, label=other,
            height=0.6)
    ax.errorbar([100 * r for r in rates], y, xerr=[100 * s for s in sems], fmt="none", ecolor="black", capsize=4)
    for yi, r in zip(y, rates):  # labels at the outer ends, clear of the error bar at the boundary
        if r >= 0.12:
            ax.text(2, yi, f"{100 * r:.1f}%", ha="left", va="center", color="white", fontweight="bold")
        if 1 - r >= 0.12:
            ax.text(98, yi, f"{100 * (1 - r):.1f}%", ha="right", va="center", color="white", fontweight="bold")
    ax.axvline(50, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, names)
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of votes (%)  ·  error bar: SEM per vote")
    ax.set_title("Which is the better editing result?")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(groups) < 3 else -0.12), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def analyze_study(db_path: Path, out_dir: Path | None = None, ours: str | None = None) -> Analysis:
    ours, other, votes = load_votes(db_path, ours)
    if not votes:
        raise BygError(f"{db_path}: no votes yet, nothing to analyze")
    result = analyze_votes(votes)
    out_dir = out_dir or db_path.with_name(db_path.stem + "-analysis")
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "user_study.json"
    md_path = out_dir / "user_study.md"
    png_path = out_dir / "user_study.png"
    payload = {"study": str(db_path), "ours": ours, "other": other, **result}
    json_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    markdown = to_markdown(ours, other, result)
    md_path.write_text(markdown, encoding="utf-8")
    bar_chart(ours, other, result, png_path)
    return Analysis(ours, other, result, json_path, md_path, png_path, markdown)
