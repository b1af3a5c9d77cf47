"""`mlcycle loop` commands: trigger, --once, status, history, resume, with --json and exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from loop_fixtures import NAME, add_data, make_project
from mlcycle.cli.main import app
from mlcycle.loop.state import LoopStore, system_clock

runner = CliRunner()


def _json(*args: str) -> object:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_trigger_once_status_history_resume(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    spec = ["--spec", str(tmp_path)]
    empty = runner.invoke(app, ["loop", "trigger", "--reason", " ", *spec])
    assert empty.exit_code == 2 and "needs a reason" in empty.output
    assert _json("loop", "trigger", "--reason", "new fares", *spec)["reason"] == "new fares"
    status = _json("loop", "status", *spec)
    assert status["pending_triggers"][0]["reason"] == "new fares" and status["active"] is None

    add_data(tmp_path)
    time.sleep(1.0)  # loop.policy.cooldown (1s) since the champion was registered
    tick = _json("loop", "--once", *spec)
    assert tick["status"] == "in_flight" and tick["run"]["state"] == "shadow", tick
    status = _json("loop", "status", *spec)
    assert status["active"]["state"] == "shadow" and status["challenger"] == 2
    assert status["pending_triggers"] == [] and status["lease"] is not None

    history = _json("loop", "history", *spec)
    assert [e["to_state"] for e in history[0]["events"]] == [
        "triggered",
        "trained",
        "gated",
        "shadow",
    ]
    text = runner.invoke(app, ["loop", "history", *spec])
    assert text.exit_code == 0 and "gated → shadow" in text.output

    assert _json("loop", "resume", *spec)["resumed"] is False
    LoopStore(project.store).stop(NAME, at=system_clock(), reason="2 automatic rollbacks")
    stopped = _json("loop", "--once", *spec)
    assert stopped["status"] == "stopped"
    shown = runner.invoke(app, ["loop", "status", *spec])
    assert "STOPPED" in shown.output and "2 automatic rollbacks" in shown.output
    assert _json("loop", "resume", *spec)["resumed"] is True
    assert _json("loop", "status", *spec)["stopped"] is None
