"""``mlcycle loop backtest``: replay the future once per retrain policy and compare them.

Example:
    mlcycle loop backtest --windows year --policies never,periodic,auto -o backtest.html
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    handle_errors,
    load_project,
    print_json,
)

_POLICIES = "never,periodic,drift,performance,auto"


@handle_errors
def backtest(
    spec: Path = SpecOption,
    policies: str = typer.Option(
        _POLICIES, "--policies", help="Comma-separated policies to replay, in this order."
    ),
    windows: str = typer.Option(
        "month", "--windows", help="Window the future is cut into: day, week, month, quarter, year."
    ),
    future: Path | None = typer.Option(
        None,
        "--future",
        help="The future rows (Parquet or CSV, the source's columns). "
        "Default: the source file with _future before its suffix.",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write the HTML report here (default: backtest.html)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Replay a time-ordered dataset window by window, once per policy, through the real loop.

    Each retrain is a real pipeline run through the gate; labels arrive one window
    late. Prints each policy's score (realized benefit − retrain_cost × retrains, or
    ±metric × rows without a benefit matrix), retrains, promotions and rollbacks.

    Example: mlcycle loop backtest --windows year --json
    """
    from mlcycle.loop.backtest import run_backtest
    from mlcycle.loop.backtest_report import render_html

    project = load_project(spec)
    names = [name.strip() for name in policies.split(",") if name.strip()]
    listener = None if as_json else (lambda line: console.print(f"  {line}", highlight=False))
    result = run_backtest(project, future=future, window=windows, policies=names, listener=listener)
    doc = result.to_dict()
    report = out or project.base_dir / "backtest.html"
    tmp = report.with_suffix(report.suffix + ".tmp")
    tmp.write_text(render_html(doc), encoding="utf-8")
    tmp.replace(report)
    if as_json:
        print_json(doc | {"report": str(report)})
        return
    table = Table(
        title=f"backtest of {doc['project']} — {len(doc['policies'][0]['windows'])} "
        f"{doc['window']} windows"
    )
    for col in ("policy", "score", "retrains", "promotions", "rollbacks", f"mean {doc['metric']}"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for p in doc["policies"]:
        mean = p["mean_metric"]
        table.add_row(
            p["name"] + (" (default)" if p["name"] == doc["default"] else ""),
            f"{p['score']:,.1f}",
            str(p["retrains"]),
            str(p["promotions"]),
            str(p["rollbacks"]),
            "–" if mean is None else f"{mean:.4g}",
        )
    console.print(table)
    console.print(f"score = {doc['score_units']}; report: {report}", highlight=False)
