"""The `mlcycle` command: one Typer app whose commands are imported only when chosen.

Each command (or command group) lives in its own module under ``mlcycle/cli``;
:data:`COMMANDS` names where, with the one-line help `mlcycle --help` shows. So
`mlcycle --help` imports no command module (and not Rich, unless it prints to a
terminal), and `mlcycle models list` imports only its group's module: this
is click's "lazily loading subcommands" pattern on Typer's group class.
``tests/unit/test_cli_lazy.py`` keeps the table equal to the real commands' help.

Example:
    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["models", "list", "--json"]).exit_code
    0
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, NamedTuple

import typer
from typer import _click  # the click Typer vendors: its Context, Command and HelpFormatter
from typer.core import HAS_RICH, TyperCommand, TyperGroup
from typer.models import CommandInfo


class Entry(NamedTuple):
    """Where a top-level command lives, and the one line `mlcycle --help` shows for it.

    Example:
        >>> Entry("mlcycle.cli.run:steps", "Show the last run of each step.").target
        'mlcycle.cli.run:steps'
    """

    #: ``"module:attribute"``: a ``typer.Typer`` (a command group) or a command function.
    target: str
    #: The command's short help (the first sentence of its help), kept equal by a test.
    help: str


# In the order `mlcycle --help` lists them.
COMMANDS: dict[str, Entry] = {
    "init": Entry(
        "mlcycle.cli.init:init",
        "Scaffold a project: a bundled example, or a spec inferred from your own data.",
    ),
    "serve": Entry(
        "mlcycle.cli.serve:serve",
        "Serve a model over REST: /predict and the Open Inference Protocol v2.",
    ),
    "predict": Entry(
        "mlcycle.cli.serve:predict",
        "Batch prediction: score a file in chunks; rows that break the contract go to a "
        "reject file.",
    ),
    "lineage": Entry(
        "mlcycle.cli.lineage:lineage",
        "Trace a model version, alias, run, data version or logged prediction to what made it.",
    ),
    "ui": Entry(
        "mlcycle.cli.ui:ui",
        "Serve the dashboard: runs, models, lineage, data and monitoring, in a browser.",
    ),
    "run": Entry(
        "mlcycle.cli.run:run",
        "Run the lifecycle: ingest → validate → split → train → evaluate → gate → register → "
        "promote.",
    ),
    "steps": Entry("mlcycle.cli.run:steps", "Show the last run of each step."),
    "data": Entry(
        "mlcycle.cli.data:app",
        "Data: ingest, dataset versions, their schema, validation, profile and report.",
    ),
    "loop": Entry(
        "mlcycle.cli.loop:app",
        "Continuous training: triggers → policy → retrain → gate → shadow → promote → watch → "
        "automatic rollback.",
    ),
    "models": Entry(
        "mlcycle.cli.models:app",
        "Registered models: versions, aliases, promotion and rollback.",
    ),
    "monitor": Entry(
        "mlcycle.cli.monitor:app",
        "Monitoring: drift, anomalies, performance and alerts against the training reference.",
    ),
    "runs": Entry(
        "mlcycle.cli.runs:app",
        "Tracked runs: every baseline, candidate and trial the pipeline trains, and your own "
        "runs from mlcycle.start_run().",
    ),
}


def load_command(name: str, entry: Entry) -> _click.Command:
    """Import the module an entry names and build its click command (a group for a Typer app).

    Example:
        >>> load_command("models", COMMANDS["models"]).name
        'models'
    """
    module_name, _, attribute = entry.target.partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    return typer.main.get_command_from_info(
        CommandInfo(name=name, callback=target),
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
    )


class _LazyCommands(MutableMapping[str, _click.Command]):
    """The root group's ``commands``: every name in :data:`COMMANDS`, each built on first use.

    A mapping (rather than overriding ``get_command``) so that everything Typer's
    group does with its commands (resolving, "did you mean", listing) works unchanged.
    """

    def __init__(self, table: dict[str, Entry], added: MutableMapping[str, _click.Command]) -> None:
        self._table = table
        self._loaded: dict[str, _click.Command] = dict(added)

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self._loaded:
            if name not in self._table:
                raise KeyError(name)
            self._loaded[name] = load_command(name, self._table[name])
        return self._loaded[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._table
        yield from (name for name in self._loaded if name not in self._table)

    def __len__(self) -> int:
        return len(self._table.keys() | self._loaded.keys())


class LazyGroup(TyperGroup):
    """Typer's group with its commands loaded on demand and its help from :data:`COMMANDS`.

    Example:
        >>> app = typer.Typer(cls=LazyGroup)  # with a callback, so Typer makes a group
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands(COMMANDS, self.commands)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        if HAS_RICH and self.rich_markup_mode is not None and sys.stdout.isatty():
            # A person at a terminal gets Typer's Rich help, drawn from stand-ins that
            # carry only the table's help, so no command module is imported for it.
            from typer import rich_utils

            stand_in = TyperGroup(
                name=self.name,
                commands={name: TyperCommand(name, short_help=e.help) for name, e in _rows(self)},
                params=self.params,
                help=self.help,
                epilog=self.epilog,
                subcommand_metavar=self.subcommand_metavar,
                rich_markup_mode=self.rich_markup_mode,
            )
            rich_utils.rich_format_help(obj=stand_in, ctx=ctx, markup_mode=self.rich_markup_mode)
            return
        # Piped or captured: click's plain help (Rich costs more to import than the rest).
        _click.Command.format_help(self, ctx, formatter)

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            # Typer prints this help as a side effect of building its Rich text; the plain
            # help is only returned, so print it here (exit 2, as a usage error).
            shown = ctx.get_help()
            if shown:
                _click.echo(shown, color=ctx.color)
            ctx.exit(2)
        return super().parse_args(ctx, args)

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        rows = [(name, entry.help) for name, entry in _rows(self)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _rows(group: TyperGroup) -> list[tuple[str, Entry]]:
    """Every visible command with its one line: from the table, or (added at run time) its own."""
    rows = []
    for name in group.commands:
        if name in COMMANDS:
            rows.append((name, COMMANDS[name]))
            continue
        command = group.commands[name]
        if not command.hidden:
            rows.append((name, Entry("", command.get_short_help_str(limit=10_000))))
    return rows


app = typer.Typer(
    name="mlcycle",
    cls=LazyGroup,
    help="One tool for the whole life of a tabular ML model.\n\n"
    "Example: mlcycle init demo --example flights && cd demo && mlcycle run",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    # Typer builds a group (and so our LazyGroup) only for an app with a callback or
    # registered commands; this app registers none, its commands come from COMMANDS.
    pass


def main() -> None:
    """Run the command line (raises ``SystemExit`` as click does; for in-process callers).

    Example:
        >>> sys.argv = ["mlcycle", "models", "list"]; main()
    """
    try:
        app()
    except KeyboardInterrupt:
        from mlcycle.cli.common import err_console

        err_console.print("mlcycle: interrupted")
        raise SystemExit(130) from None


def run() -> None:
    """The ``mlcycle`` console script: :func:`main`, then leave without the interpreter's teardown.

    Once the command has returned, its threads are joined and its exit handlers
    have run (``threading``'s shutdown, then :mod:`atexit`: logging flushed,
    temporary folders removed), what the interpreter's finalisation has left
    to do is free memory and run native libraries' static destructors. That
    cost 0.05-0.2 s per command (13 % of an ad-hoc drift check), and once a
    destructor (a native thread pool still joinable) aborted a command that had
    finished its work (SIGABRT, "terminate called without an active
    exception"). So the process leaves with ``os._exit`` and the command's code.
    An exception that escapes :func:`main` takes the normal path (traceback).

    Example:
        >>> run()   # what `mlcycle models list` runs; never returns
    """
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    leave(code)


def leave(code: object) -> None:
    """End the process as ``sys.exit(code)`` would, after the shutdown work that matters.

    Falls back to ``sys.exit`` where this Python lacks ``threading._shutdown``.

    Example:
        >>> leave(0)
    """
    import atexit
    import contextlib
    import os
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:  # pragma: no cover - every CPython from 3.4 to 3.14 has it
        raise SystemExit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): the message goes to stderr, status 1
        print(code, file=sys.stderr)
        status = 1
    shutdown()  # join non-daemon threads, as the interpreter would (executors included)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (mlcycle … | head) has nothing left to keep.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status & 0xFF)  # as the OS truncates sys.exit(256) or sys.exit(-1)
