"""`mlcycle init DIR`: scaffold a project from a bundled example or from your own data.

``--example NAME`` copies a bundled example (data and spec). ``--data FILE
--target COLUMN`` reads your data (a CSV or Parquet file, a folder or glob, or
a SQL URL with ``--query``), infers the task, the special columns, the split
and the metric (:mod:`mlcycle.data.scaffold`) and writes a commented
``mlcycle.yaml`` that points at the data where it is.

``--ci github`` also writes a GitHub Actions workflow and a serving Dockerfile
(:mod:`mlcycle.templates_ci`); on a folder that already has ``mlcycle.yaml``
(and no ``--example``/``--data``) it writes only those files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import typer

from mlcycle.cli.common import JsonOption, console, handle_errors, print_json
from mlcycle.errors import BadInput

# URL schemes that name a database (SQLAlchemy dialects), not files.
_SQL_SCHEMES = re.compile(
    r"^(sqlite|postgres|postgresql|mysql|mariadb|mssql|oracle|duckdb|snowflake|redshift|"
    r"bigquery|trino|clickhouse)(\+[\w]+)?://",
    re.IGNORECASE,
)
_PROJECT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@handle_errors
def init(
    directory: Path = typer.Argument(Path("."), help="Folder to create the project in."),
    example: str | None = typer.Option(
        None, "--example", "-e", help="Bundled example to copy (default: flights)."
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Your data: a CSV/Parquet file, a folder, a glob, or a SQL URL (with --query).",
    ),
    target: str | None = typer.Option(
        None, "--target", "-t", help="With --data: the column to predict."
    ),
    query: str | None = typer.Option(
        None, "--query", help="With a SQL URL in --data: the SELECT that returns the rows."
    ),
    sample: float | None = typer.Option(
        None, "--sample", min=0.0001, max=1.0, help="Example only: keep this fraction of rows."
    ),
    ci: str | None = typer.Option(
        None,
        "--ci",
        help="Also write CI for this provider (github): a workflow (tests → run → gate → "
        "serving image for a blessed champion) and deploy/Dockerfile. On a folder that has "
        "mlcycle.yaml, writes only these.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Overwrite an existing mlcycle.yaml (and, with --ci, CI files)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Scaffold a project: a bundled example, or a spec inferred from your own data.

    Example: mlcycle init churn --data customers.csv --target churned --ci github
    """
    if ci is not None:
        # Checked before anything is written: a refusal leaves the folder as it was.
        _ci_targets(directory, ci, force)
        existing = (directory / "mlcycle.yaml").is_file()
        if existing and data is None and example is None and sample is None:
            if target is not None or query is not None:
                raise BadInput(
                    "--target and --query go with --data",
                    "they describe your own data",
                    "add --data FILE, or drop them to add only the CI files",
                )
            _finish_ci(directory, ci, as_json)
            return
    if data is None:
        if target is not None or query is not None:
            raise BadInput(
                "--target and --query go with --data",
                "they describe your own data",
                "add --data FILE (or drop them to copy an example)",
            )
        _check_free(directory, force)
        _write_example(directory, example or "flights", sample)
        if ci is not None:
            _finish_ci(directory, ci, as_json)
        return
    if example is not None or sample is not None:
        raise BadInput(
            "--data cannot be combined with --example or --sample",
            "a project starts either from a bundled example or from your data",
            "drop --example/--sample, or drop --data",
        )
    if not target:
        raise BadInput(
            "--data needs --target",
            "init must know which column the model predicts",
            "add --target COLUMN (e.g. --target churned)",
        )
    _check_free(directory, force)
    _write_from_data(directory, data, target, query, as_json, ci)


def _check_free(directory: Path, force: bool) -> None:
    if (directory / "mlcycle.yaml").exists() and not force:
        raise BadInput(
            f"{directory / 'mlcycle.yaml'} already exists",
            "init would overwrite your spec",
            "pick another folder or pass --force",
        )


def _write_example(directory: Path, example: str, sample: float | None) -> None:
    from mlcycle.examples import EXAMPLES

    if example not in EXAMPLES:
        raise BadInput(f"unknown example '{example}'", "", f"choose one of: {', '.join(EXAMPLES)}")
    directory.mkdir(parents=True, exist_ok=True)
    with console.status(f"writing the {example} example…"):
        written = EXAMPLES[example](directory, sample=sample)
    for path in written:
        console.print(f"  wrote {path}")
    console.print(f"Next: cd {directory} && mlcycle run")


def _write_from_data(
    directory: Path, data: str, target: str, query: str | None, as_json: bool, ci: str | None
) -> None:
    """Read, propose, check the spec loads, then write it (nothing is written on error)."""
    import yaml

    from mlcycle.data.scaffold import propose, read_sample
    from mlcycle.data.scaffold_render import render_spec
    from mlcycle.spec import Spec

    source = _source(directory, data, query)
    status = None if as_json else console.status(f"reading {source.shown}…")
    if status:
        status.start()
    try:
        frame = read_sample(source, directory)
        if status:
            status.update(f"looking at {len(frame):,} rows…")
        proposal = propose(frame, target)
    finally:
        if status:
            status.stop()
    origin = f"{len(frame):,} rows of {data if query is None else 'the query'}"
    text = render_spec(
        proposal, project=_project_name(directory, data), source=source, origin=origin
    )
    # The spec is checked the way `mlcycle run` will load it before anything is written.
    Spec.from_dict(yaml.safe_load(text), origin="the proposed spec")
    directory.mkdir(parents=True, exist_ok=True)
    spec_path = directory / "mlcycle.yaml"
    tmp = spec_path.with_suffix(".yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(spec_path)
    written = _write_ci(directory, ci) if ci is not None else None
    if as_json:
        print_json(_as_dict(proposal) | {"spec": str(spec_path)} | _ci_json(ci, written))
        return
    _print_summary(proposal, spec_path, directory)
    if ci is not None and written is not None:
        _print_ci(directory, written)


def _source(directory: Path, data: str, query: str | None) -> Any:
    """The spec's ``data.source`` for what the user typed (relative to the spec's folder)."""
    from mlcycle.spec import Source

    if query is not None or _SQL_SCHEMES.match(data):
        if query is None:
            raise BadInput(
                f"--data {data.split('://')[0]}://… is a database URL",
                "init needs the query that returns the rows",
                'add --query "SELECT * FROM my_table"',
            )
        if not _SQL_SCHEMES.match(data):
            raise BadInput(
                f"--query needs a database URL in --data, not {data!r}",
                "a query runs against a database",
                "pass a SQLAlchemy URL such as sqlite:///data.db or postgresql://host/db",
            )
        return Source(sql=query, url=_sqlite_from_here(directory, data))
    if "://" in data:
        return Source(path=data)
    here = Path(os.path.abspath(Path(data).expanduser()))
    folder = Path(os.path.abspath(directory))
    # Inside the project folder: a relative path, so the folder can move as a whole.
    path = os.path.relpath(here, folder) if here.is_relative_to(folder) else str(here)
    return Source(path=path)


def _sqlite_from_here(directory: Path, url: str) -> str:
    """A relative SQLite path is relative to the spec's folder; the user meant the shell's."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/") or ":memory:" in url:
        return url
    here = Path(os.path.abspath(url.removeprefix(prefix)))
    folder = Path(os.path.abspath(directory))
    if here.is_relative_to(folder):
        return prefix + os.path.relpath(here, folder)
    return prefix + str(here)


def _project_name(directory: Path, data: str) -> str:
    """The folder's name (else the data file's), as the spec allows a project name."""
    for raw in (Path(os.path.abspath(directory)).name, Path(data.split("?")[0]).stem):
        name = _PROJECT_NAME.sub("-", raw).strip("-._")
        if name:
            return name
    return "project"


def _as_dict(proposal: Any) -> dict[str, Any]:
    import dataclasses

    data = dataclasses.asdict(proposal)
    data["excluded"] = proposal.excluded
    return data


def _print_summary(p: Any, spec_path: Path, directory: Path) -> None:
    label = f" (positive: {p.positive_label!r})" if p.positive_label is not None else ""
    console.print(f"[bold]{p.task}[/] model of '{p.target}'{label}, {p.rows:,} rows")
    console.print(f"  metric: {p.metric}; split: {p.split}", highlight=False)
    for key in ("id_column", "timestamp_column", "group_column"):
        if getattr(p, key):
            console.print(f"  {key}: {getattr(p, key)}", highlight=False)
    for note in p.notes:
        mark = "excluded" if note.exclude else "kept"
        console.print(
            f"  [yellow]check[/] {note.column} ({note.title}, {mark}): {note.detail}",
            highlight=False,
        )
    for warning in p.warnings:
        console.print(f"  [yellow]check[/] {warning}", highlight=False)
    here = Path(os.path.abspath(directory)) == Path.cwd()
    then = "mlcycle run" if here else f"cd {directory} && mlcycle run"
    console.print(f"wrote {spec_path} — read its comments, then: {then}", highlight=False)


# --- --ci: the CI workflow and the serving Dockerfile ------------------------------------


def _ci_targets(directory: Path, ci: str, force: bool) -> list[Path]:
    """The files ``--ci`` writes; refuses an unknown provider and, unless forced, existing ones."""
    from mlcycle.templates_ci import PROVIDERS, ci_files

    if ci not in PROVIDERS:
        ci_files(ci, project="")  # raises the one error that names the providers
    targets = [directory / rel for rel in PROVIDERS[ci]]
    present = [str(path) for path in targets if path.exists()]
    if present and not force:
        raise BadInput(
            f"{', '.join(present)} already exist{'s' if len(present) == 1 else ''}",
            "init --ci would overwrite your CI files",
            "move them away, or pass --force to overwrite them",
        )
    return targets


def _write_ci(directory: Path, ci: str) -> list[Path]:
    """Render and write the CI files (each atomically); the image is named after the project."""
    from mlcycle.templates_ci import ci_files

    rendered = ci_files(ci, project=_spec_project(directory))
    written = []
    for rel, text in rendered.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def _finish_ci(directory: Path, ci: str, as_json: bool) -> None:
    written = _write_ci(directory, ci)
    if as_json:
        print_json(_ci_json(ci, written))
        return
    _print_ci(directory, written)


def _ci_json(ci: str | None, written: list[Path] | None) -> dict[str, Any]:
    return {} if ci is None else {"ci": ci, "ci_files": [str(p) for p in written or []]}


def _spec_project(directory: Path) -> str:
    """The spec's project name (it names the image); the folder's name if the spec has none."""
    import yaml

    try:
        raw = yaml.safe_load((directory / "mlcycle.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        raw = None
    project = raw.get("project") if isinstance(raw, dict) else None
    if isinstance(project, dict):
        project = project.get("name")
    return str(project) if project else Path(os.path.abspath(directory)).name


def _print_ci(directory: Path, written: list[Path]) -> None:
    for path in written:
        console.print(f"  wrote {path}", highlight=False)
    console.print(
        "CI: push to main runs tests → mlcycle run → gate, and pushes the serving image to "
        "ghcr.io only for a blessed champion (docs/deploy.md). Set the secrets "
        "MLCYCLE_STORE_URL and MLCYCLE_ARTIFACTS_URL so the gate sees the reigning champion.",
        highlight=False,
    )
    root = _git_root(Path(os.path.abspath(directory)))
    if root is not None and root != Path(os.path.abspath(directory)):
        console.print(
            f"[yellow]note:[/] GitHub reads workflows only at the repository root ({root}): "
            "move .github/ there and set the jobs' working-directory to this folder",
            highlight=False,
        )


def _git_root(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None
