"""Writing a proposal as a commented ``mlcycle.yaml`` (``mlcycle init --data``).

:func:`render_spec` turns a :class:`~mlcycle.data.scaffold_proposal.Proposal` into
YAML text where every choice carries its reason as a comment and every column a
person must look at is marked ``CHECK``. Text only: it decides nothing, reads nothing.

Example:
    >>> text = render_spec(propose(df, "churned"), project="churn",
    ...                    source=Source(path="data.csv"), origin="2,000 rows of data.csv")
    >>> text.splitlines()[3]
    'project: "churn"'
"""

from __future__ import annotations

import json
from typing import Any

from mlcycle.data.scaffold_proposal import Proposal
from mlcycle.spec import Source

__all__ = ["render_spec"]


def render_spec(p: Proposal, *, project: str, source: Source, origin: str) -> str:
    """The proposal as a commented ``mlcycle.yaml``: every choice says why and what to change.

    ``origin`` says where the rows came from (shown in the header comment).

    Example:
        >>> text = render_spec(p, project="churn", source=Source(path="data.csv"),
        ...                    origin="2,000 rows of data.csv")
        >>> Spec.from_dict(yaml.safe_load(text)).problem.task
        'binary'
    """
    out = [
        f"# mlcycle project written by `mlcycle init --data` from {origin}.",
        "# Each choice below says why it was made. Read the comments marked CHECK,",
        "# change what is wrong, then run `mlcycle run`.",
        f"project: {_y(project)}",
        "",
        "problem:",
        *_comment(p.task_why, 2),
        f"  task: {p.task}",
        f"  target: {_y(p.target)}",
    ]
    if p.positive_label is not None:
        out += [*_comment(p.positive_why, 2), f"  positive_label: {_y(p.positive_label)}"]
    if p.id_column is not None:
        out += [*_comment(p.id_why, 2), f"  id_column: {_y(p.id_column)}"]
    if p.timestamp_column is not None:
        out += [*_comment(p.timestamp_why, 2), f"  timestamp_column: {_y(p.timestamp_column)}"]
    out += [*_comment(p.metric_why, 2), f"  primary_metric: {p.metric}", "", "data:"]
    out += ["  source:", *_source_lines(source), "  features:"]
    excluded = p.excluded
    if excluded:
        out.append("    # Left out of the model; delete a line to use that column again.")
        out.append("    exclude:")
        for name in excluded:
            for note in (n for n in p.notes if n.column == name and n.exclude):
                out += _comment(f"CHECK {note.title}: {note.detail}", 6)
            out.append(f"      - {_y(name)}")
    else:
        out.append("    exclude: []   # every column but the target, id and timestamp is used")
    review = [n for n in p.notes if not n.exclude and n.column not in excluded]
    for note in review:
        out += _comment(f"CHECK '{note.column}' (kept as a feature): {note.detail}", 4)
    if p.null_targets:
        out += _comment(
            f"{p.null_targets:,} row(s) have no '{p.target}': rows without a label cannot "
            "train or judge a model, so this transform drops them",
            2,
        )
        quoted = '"' + p.target.replace('"', '""') + '"'
        keep = f"SELECT * FROM raw WHERE {quoted} IS NOT NULL"
        # Single-quoted YAML keeps the SQL's double quotes readable ('' is a quote in it).
        out += ["  transforms:", "    - sql: '" + keep.replace("'", "''") + "'"]
    for warning in p.warnings:
        out += _comment(f"CHECK: {warning}", 2)
    group = f", group_column: {_y(p.group_column)}" if p.split == "group" else ""
    out += [
        "",
        "prepare:",
        *_comment(p.split_why, 2),
        f"  split: {{strategy: {p.split}{group}, valid_fraction: 0.15, test_fraction: 0.15}}",
        "",
        "train:",
        "  seed: 42",
        "  # Gradient-boosted trees: strong on tabular data, handle missing values and",
        "  # categories without tuning. Add candidates to compare more models.",
        "  candidates:",
        "    - {name: hgb, estimator: hist_gradient_boosting, params: {}}",
        "",
        "gates:",
        "  # A model is registered only if it beats a trivial baseline on the test split.",
        "  # Add thresholds (e.g. {" + f"{p.metric}: …" + "}) once you know what is good enough.",
        "  baseline_margin: 0.0",
        "",
    ]
    return "\n".join(out)


def _source_lines(source: Source) -> list[str]:
    if source.sql is not None:
        return [f"    url: {_y(source.url)}", f"    sql: {_y(source.sql)}"]
    lines = [f"    path: {_y(source.path)}"]
    if source.encoding != "utf-8":
        lines.append(f"    encoding: {_y(source.encoding)}")
    return lines


def _y(value: Any) -> str:
    """A scalar as YAML: JSON strings and numbers are YAML too, and quoting every string
    keeps 'yes', 'no', 'null' and '1e3' the text they are."""
    return json.dumps(value, ensure_ascii=False)


def _comment(text: str, indent: int, width: int = 88) -> list[str]:
    """``text`` as ``#`` comment lines wrapped to ``width`` columns."""
    import textwrap

    prefix = " " * indent + "# "
    return textwrap.wrap(text, width=width, initial_indent=prefix, subsequent_indent=prefix)
