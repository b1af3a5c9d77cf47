"""The root command loads its commands lazily: its table must match the real commands.

`mlcycle --help` is drawn from ``COMMANDS`` in :mod:`mlcycle.cli.main` without
importing any command module; these tests keep that table equal to the real
commands (names, where they live, their one-line help) and check what `--help`
imports, in a fresh process as a user starts it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.models import ArgumentInfo, OptionInfo
from typer.testing import CliRunner

import mlcycle.cli
from mlcycle.cli.main import COMMANDS, Entry, app, load_command

# Imported by `--help` in neither of its renderings (Rich only at a terminal).
HEAVY = ("pandas", "numpy", "sklearn", "sqlalchemy", "pyarrow", "pydantic", "yaml")

# Runs `mlcycle ARGS` as the console script does, then reports what it imported on stderr.
PROBE = r"""
import json, sys
sys.argv = ["mlcycle", *sys.argv[1:]]
from mlcycle.cli.main import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
top = sorted({m.split(".")[0] for m in sys.modules})
ours = sorted(m for m in sys.modules if m.startswith("mlcycle."))
cli = [m for m in ours if m.startswith("mlcycle.cli.")]
found = {"code": code, "top": top, "cli": cli, "ours": ours}
sys.stderr.write("\nPROBE " + json.dumps(found) + "\n")
"""


def _probe(
    *args: str, terminal: bool = False, cwd: Path | None = None
) -> tuple[dict[str, Any], str]:
    """Run PROBE with ``args``: its report, and what it printed (on a terminal if asked)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLCYCLE_", "TYPER_"))}
    leader, follower = pty.openpty() if terminal else (-1, subprocess.PIPE)
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBE, *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    shown = b""
    if terminal:
        os.close(follower)  # the child holds the terminal now; read until it closes
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child's end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
        os.close(leader)
    out, err = proc.communicate(timeout=120)
    report = err.decode().rsplit("PROBE ", 1)
    assert len(report) == 2, err.decode()
    return json.loads(report[1]), (shown or out or b"").decode("utf-8", "replace")


def _cli_modules() -> Iterator[Any]:
    for info in pkgutil.iter_modules(mlcycle.cli.__path__):
        yield importlib.import_module(f"mlcycle.cli.{info.name}")


def _reachable() -> tuple[set[int], set[int]]:
    """ids of every Typer app and command function reachable from COMMANDS."""
    apps: set[int] = {id(app)}
    functions: set[int] = set()

    def walk(sub: typer.Typer) -> None:
        apps.add(id(sub))
        functions.update(id(c.callback) for c in sub.registered_commands)
        if sub.registered_callback is not None:
            functions.add(id(sub.registered_callback.callback))
        for group in sub.registered_groups:
            assert group.typer_instance is not None
            walk(group.typer_instance)

    for entry in COMMANDS.values():
        module, _, attribute = entry.target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            walk(target)
        else:
            functions.add(id(target))
    return apps, functions


def _is_command(fn: Any) -> bool:
    # A Typer command declares its parameters with typer.Option / typer.Argument defaults.
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(isinstance(p.default, OptionInfo | ArgumentInfo) for p in params)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_table_says_what_the_real_command_says(name: str) -> None:
    command = load_command(name, COMMANDS[name])
    assert command.name == name
    real = command.get_short_help_str(limit=10_000)
    assert COMMANDS[name].help == real, (
        f"COMMANDS[{name!r}].help in mlcycle/cli/main.py is out of date; the command says {real!r}"
    )


def test_every_command_in_the_cli_package_is_in_the_table() -> None:
    apps, functions = _reachable()
    missing = []
    for module in _cli_modules():
        for attribute, value in vars(module).items():
            if isinstance(value, typer.Typer) and id(value) not in apps:
                missing.append(f"{module.__name__}:{attribute} (a Typer app)")
            elif (
                inspect.isfunction(value)
                and value.__module__ == module.__name__
                and not attribute.startswith("_")
                and _is_command(value)
                and id(value) not in functions
            ):
                missing.append(f"{module.__name__}:{attribute} (a command function)")
    assert not missing, (
        f"not reachable from COMMANDS in mlcycle/cli/main.py (so not in `mlcycle`): {missing}; "
        "add a top-level command to COMMANDS, or register a subcommand on its group"
    )


def test_help_imports_no_command_module_and_no_data_stack() -> None:
    report, shown = _probe("--help")
    assert report["code"] == 0
    assert report["cli"] == ["mlcycle.cli.main"], report["cli"]
    assert not set(HEAVY) & set(report["top"]), sorted(set(HEAVY) & set(report["top"]))
    assert "rich" not in report["top"]  # piped: plain help
    for name, entry in COMMANDS.items():
        assert f"  {name} " in shown
        assert " ".join(shown.split()).count(entry.help) == 1, name


def test_help_at_a_terminal_is_rich_and_still_imports_no_command_module() -> None:
    report, shown = _probe("--help", terminal=True)
    assert report["code"] == 0
    assert report["cli"] == ["mlcycle.cli.main"], report["cli"]
    assert "rich" in report["top"]
    assert not set(HEAVY) & set(report["top"])
    assert "Commands" in shown and "╭" in shown  # Typer's Rich panels
    assert all(name in shown for name in COMMANDS)


def test_a_chosen_command_loads_only_its_own_module() -> None:
    report, shown = _probe("models", "--help")
    assert report["code"] == 0
    loaded = {m for m in report["cli"] if m not in ("mlcycle.cli.main", "mlcycle.cli.common")}
    # the models group and `models export`, registered on it
    assert loaded == {"mlcycle.cli.models", "mlcycle.cli.export"}, loaded
    assert "export" in shown and "promote" in shown


def test_ad_hoc_drift_outside_a_project_loads_no_project_and_no_sqlalchemy(
    tmp_path: Path,
) -> None:
    import pandas as pd

    rows = 200
    for name, shift in (("ref.csv", 0.0), ("cur.csv", 5.0)):
        pd.DataFrame(
            {"x": [i % 17 + shift for i in range(rows)], "c": ["a", "b"] * (rows // 2)}
        ).to_csv(tmp_path / name, index=False)
    report, shown = _probe(
        "monitor", "drift", "-r", "ref.csv", "-c", "cur.csv", "--json", cwd=tmp_path
    )
    assert report["code"] == 0, shown
    assert {f["feature"] for f in json.loads(shown)} == {"x", "c"}
    assert "sqlalchemy" not in report["top"]
    assert not [m for m in report["ours"] if m.startswith(("mlcycle.pipeline", "mlcycle.store"))]


def test_the_batch_job_imports_no_http_stack() -> None:
    code = (
        "import sys\n"
        "from mlcycle.serve import ModelRuntime, predict_file\n"
        "print(sorted(m for m in ('mlcycle.serve.http', 'starlette', 'uvicorn') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


def test_no_arguments_shows_the_help_and_exits_2() -> None:
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2
    assert result.stdout.startswith("Usage: mlcycle [OPTIONS] COMMAND")
    assert "models" in result.stdout


def test_an_unknown_command_is_a_usage_error_with_a_suggestion() -> None:
    result = CliRunner().invoke(app, ["modles", "list"])
    assert result.exit_code == 2
    assert "No such command 'modles'" in result.output
    assert "Did you mean 'models'?" in result.output


def test_a_command_added_at_run_time_is_listed_with_its_own_help() -> None:
    group = typer.main.get_command(app)
    added = typer.main.get_command_from_info(
        typer.models.CommandInfo(name="extra", callback=lambda: None, help="An extra command."),
        pretty_exceptions_short=True,
        rich_markup_mode=None,
    )
    group.add_command(added)  # type: ignore[attr-defined]
    shown = group.get_help(typer.Context(group, info_name="mlcycle"))
    assert "extra" in shown and "An extra command." in shown
    assert "models" in shown


def test_an_entry_whose_target_is_missing_fails_naming_it() -> None:
    with pytest.raises(AttributeError, match="nope"):
        load_command("models", Entry("mlcycle.cli.models:nope", "x"))
