"""Shared CLI plumbing: the spec option, JSON output, and turning errors into messages."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich import get_console
from rich.console import Console
from rich.markup import escape

from mlcycle.errors import MlcycleError

# Rich's global console: a stage's own live display (the tuning progress) nests in
# the CLI's status on it instead of fighting it for the terminal line.
console = get_console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

SpecOption = typer.Option(
    Path(os.environ.get("MLCYCLE_SPEC", "mlcycle.yaml")),
    "--spec",
    "-s",
    help="The project's spec file (or its folder). Env: MLCYCLE_SPEC.",
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(error: MlcycleError) -> None:
    # Escaped: a message may name an extra (`mlcycle[s3]`), which Rich would take as markup.
    err_console.print(
        f"[bold red]mlcycle:[/] {escape(error.message)}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(error.exit_code)


def handle_errors(fn: F) -> F:
    """Turn mlcycle errors into `mlcycle: what — why — fix` and an exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MlcycleError as exc:
            fail(exc)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("MLCYCLE_DEBUG"):
                traceback.print_exc()
            err_console.print(
                f"[bold red]mlcycle:[/] internal error: {type(exc).__name__}: {exc} — "
                "this is a bug in mlcycle — run again with MLCYCLE_DEBUG=1 for the traceback "
                "and report it",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def load_project(spec: Path) -> Any:
    """The project of a spec file (or its folder); :class:`BadInput` when there is none.

    A missing spec is refused before the pipeline (SQLAlchemy, the store) is
    imported: commands that also work outside a project, such as
    ``mlcycle monitor drift -r FILE -c FILE``, try this first.

    Example:
        >>> load_project(Path("mlcycle.yaml")).name
        'flights'
    """
    spec_path = spec / "mlcycle.yaml" if spec.is_dir() else spec  # as Project.load reads it
    if not spec_path.is_file():
        from mlcycle.spec import Spec

        Spec.load(spec_path)  # raises the spec's own "not found" error
    from mlcycle.pipeline.project import Project

    return Project.load(spec)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
