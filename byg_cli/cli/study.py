"""`byg user-study build|serve|analyze`: parse arguments and hand over to byg_cli.study."""

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from byg_cli.cli.app import app

study_app = typer.Typer(help="A two-alternative forced-choice web study of two editing methods.", no_args_is_help=True)
app.add_typer(study_app, name="user-study")


def _print_links(base_url: str, raters, admin_token: str) -> None:
    # Plain lines, never wrapped, so links can be copied from any terminal width.
    console = Console()
    console.print("[bold]Rater links[/] (send one to each rater):")
    for r in raters:
        console.print(f"  {r.name}  {base_url}/r/{r.token}", soft_wrap=True, highlight=False)
    console.print(f"[bold]Admin token[/]: {admin_token}", soft_wrap=True, highlight=False)
    console.print(f"  live counts: {base_url}/admin/counts?token={admin_token}", soft_wrap=True, highlight=False)
    console.print(f"  export:      {base_url}/admin/export?token={admin_token}", soft_wrap=True, highlight=False)


@study_app.command("build")
def build_command(
    method: List[str] = typer.Option(..., "--method", help="NAME=DIR with one output per item; give two. "
                                     "The first is the method whose win rate is reported."),
    sources: Path = typer.Option(..., "--sources", help="Folder of source images/videos, one per item (key = stem)."),
    instructions: Path = typer.Option(..., "--instructions", help="JSONL or CSV with item, instruction, condition."),
    output: Path = typer.Option(..., "-o", "--output", help="The study database to write (SQLite)."),
    raters: int = typer.Option(8, "--raters", help="How many rater links to create."),
    per_rater: Optional[int] = typer.Option(None, "--per-rater", help="Comparisons per rater (default: all items)."),
    seed: int = typer.Option(0, "--seed", help="Seed for packs, order and A/B sides."),
    title: str = typer.Option("Editing user study", "--title", help="Title shown on the raters' page."),
    base_url: str = typer.Option("http://127.0.0.1:8000", "--base-url", help="Server address used in printed links."),
    force: bool = typer.Option(False, "--force", help="Replace an existing study database."),
) -> None:
    """Pair the methods' outputs per source item into a study database with rater packs and tokens."""
    from byg_cli.study.build import build_study

    result = build_study(methods=method, sources=sources, instructions=instructions, output=output, raters=raters,
                         per_rater=per_rater, seed=seed, title=title, force=force)
    conds = ", ".join(f"{c}: {n}" for c, n in sorted(result.conditions.items()))
    Console().print(f"wrote {result.path}: {result.n_items} items ({conds}), methods {' vs '.join(result.methods)}",
                    soft_wrap=True, highlight=False)
    _print_links(base_url.rstrip("/"), result.raters, result.admin_token)


@study_app.command("serve")
def serve_command(
    study: Path = typer.Argument(..., help="The study database made by `byg user-study build`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve the study to raters (links from `build`, printed again here)."""
    from byg_cli.extras import check
    from byg_cli.study.server import rater_links, serve

    check("byg user-study serve", "study")
    raters, admin_token = rater_links(study)
    _print_links(f"http://{host}:{port}", raters, admin_token)
    serve(study, host=host, port=port)


@study_app.command("analyze")
def analyze_command(
    study: Path = typer.Argument(..., help="The study database."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <study>-analysis/ beside it)."),
    ours: Optional[str] = typer.Option(None, "--ours", help="Method whose win rate is reported (default: first)."),
) -> None:
    """Win rates, significance tests and agreement per condition: JSON, markdown and a bar chart PNG."""
    from byg_cli.extras import check
    from byg_cli.study.report import analyze_study

    check("byg user-study analyze", "study")  # its bar chart
    analysis = analyze_study(study, out_dir=out, ours=ours)
    console = Console()
    console.print(analysis.markdown, markup=False, highlight=False)
    console.print(f"wrote {analysis.json_path}, {analysis.markdown_path}, {analysis.chart_path}", soft_wrap=True,
                  highlight=False)
