"""`mlcycle monitor profile`: the stored window profiles, per window or rolled up.

Each window `monitor run` computes keeps the profile of its rows; this command
merges them (per window, per calendar month, or all together) without reading
the prediction log again, and shows per feature the nulls, the range against
the training range, and the values training never saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mlcycle.cli.common import JsonOption, SpecOption, console, handle_errors, print_json
from mlcycle.cli.monitor_data import open_monitor


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.4g}"


def _table(group: dict[str, Any]) -> Table:
    title = f"{group['key']}: {group['rows']} rows, {len(group['windows'])} window(s)"
    if group["missing"]:
        title += f" ({len(group['missing'])} stored without a profile, left out)"
    table = Table(title=title)
    for col in ("feature", "nulls", "range", "training range", "outside", "new values"):
        table.add_column(col)
    for f in group["features"]:
        name = f["feature"] + (" (seasonal)" if f["seasonal"] else "")
        nulls = f"{f['nulls']} ({f['null_share']:.1%})"
        if "train_min" in f:
            table.add_row(
                name,
                nulls,
                f"{_number(f['min'])} to {_number(f['max'])}",
                f"{_number(f['train_min'])} to {_number(f['train_max'])}",
                f"{f['out_of_range_rows']} out of range",
                "",
            )
        elif "unseen_rows" in f:
            shown = ", ".join(f["new_values"][:5]) + (" …" if len(f["new_values"]) > 5 else "")
            table.add_row(name, nulls, "", "", f"{f['unseen_rows']} unseen", shown)
        else:
            table.add_row(name, nulls, "", "", "", "")
    return table


@handle_errors
def profile(
    by: str = typer.Option(
        "window", "--by", help="window (each on its own), month (day/month windows) or all."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only windows from this key on (e.g. 2013-08 or 2013-08-15)."
    ),
    model_version: int | None = typer.Option(
        None,
        "--model-version",
        help="Only windows served by this model version (e.g. every window since it was promoted).",
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the champion)."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Window profiles (nulls, ranges, values training never saw), per window or rolled up.

    Example: mlcycle monitor profile --by month
    Example (everything v3 served): mlcycle monitor profile --by all --model-version 3 --json
    """
    from mlcycle.errors import BadInput
    from mlcycle.monitor.profiled import profile_figures, rollup

    mon = open_monitor(spec, model, quiet=True).monitor
    chosen = [
        w
        for w in mon.windows()
        if (since is None or w.key >= since)
        and (model_version is None or w.model_version == model_version)
    ]
    if not chosen:
        raise BadInput(
            f"no monitored window of {mon.model} matches",
            "window profiles are stored by `mlcycle monitor run`"
            + (
                f" (filters: since={since}, model version={model_version})"
                if since or model_version is not None
                else ""
            ),
            "run `mlcycle monitor run` first, or widen --since / --model-version",
        )
    groups = []
    for r in rollup(chosen, by):
        figures = profile_figures(r.profile, mon.known, r.checks, mon.seasonal_features)
        groups.append(
            {
                "key": r.key,
                "windows": r.windows,
                "missing": r.missing,
                "rows": r.profile.rows,
                "features": figures,
                "checks": r.checks,
                "profile": r.profile.model_dump(mode="json"),
            }
        )
    if as_json:
        print_json(groups)
        return
    if not groups:
        console.print("no window holds a profile yet: run `mlcycle monitor run` again")
    for group in groups:
        console.print(_table(group))


__all__ = ["profile"]
