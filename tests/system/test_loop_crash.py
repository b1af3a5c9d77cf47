"""`kill -9` of a real `mlcycle loop --once` in every state of a run, then a restart.

Each process is killed (SIGKILL, by the loop's fault-injection point) at the most
dangerous moment of a state: inside the pipeline, right after a transition, or
after an alias move but before the transition that records it. After every kill
the store must be consistent — one champion, its alias log agreeing with it, no
bundle registered twice, one loop run — and the next process must carry on.
SQLite, and PostgreSQL when MLCYCLE_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import POSTGRES_URL, postgres_schema_url
from loop_fixtures import NAME, add_data, data, labels, make_project, traffic
from mlcycle.loop.machine import KILL_ENV, Engine
from mlcycle.loop.state import LoopStore, stamp
from mlcycle.pipeline.project import Project
from mlcycle.store import tables as t

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.param == "sqlite":
        yield
        return
    if not POSTGRES_URL:
        pytest.skip("MLCYCLE_TEST_POSTGRES_URL is not set")
    for url in postgres_schema_url():
        monkeypatch.setenv("MLCYCLE_STORE_URL", url)
        yield


def _once(root: Path, kill: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill:
        env[KILL_ENV] = kill
    done = subprocess.run(
        [MLCYCLE, "loop", "--once", "--json", "--spec", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode in (0, -9), done.stderr
    return done.returncode


def _restart(project: Project) -> str:
    """A tick by a fresh engine in this process (cheaper than a process), lease released."""
    engine = Engine(Project.load(project.base_dir))
    try:
        return str(engine.tick()["status"])
    finally:
        engine.runs.release(NAME, engine.holder)


def _consistent(project: Project) -> None:
    registry = project.registry
    versions = registry.versions(NAME)
    bundles = [v.bundle_id for v in versions]
    assert len(bundles) == len(set(bundles)) <= 2, versions
    champion = registry.alias_version(NAME, "champion")
    moves = registry.history(NAME, "champion")
    assert moves[-1]["to_version"] == champion  # the alias and its log agree
    with project.store.engine.connect() as conn:
        runs = conn.execute(sa.select(sa.func.count()).select_from(t.loop_runs)).scalar()
    assert runs == 1


def _backdate(project: Project, minutes: int = 10) -> datetime:
    """Pretend the run entered its state ``minutes`` ago (shadow / watch need time)."""
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    with project.store.engine.begin() as conn:
        conn.execute(t.loop_runs.update().values(state_since=stamp(since)))
    return since + timedelta(minutes=1)


@pytest.mark.slow
def test_kill_9_in_every_state_then_restart(tmp_path: Path, store_env: None) -> None:
    project = make_project(tmp_path)
    runs = LoopStore(project.store)
    add_data(tmp_path)
    runs.request(NAME, "crash test", by="test", at=datetime.now(UTC))
    time.sleep(1.0)  # loop.policy.cooldown (1s) since the champion was registered

    def state() -> str:
        return runs.runs(NAME)[0].state

    # triggered: killed inside the pipeline, while the gate runs.
    assert _once(tmp_path, "step:gate") == -9
    assert state() == "triggered" and len(project.registry.versions(NAME)) == 1
    # trained: killed right after the transition.
    assert _once(tmp_path, "after:trained") == -9
    assert state() == "trained"
    _consistent(project)
    # gated: killed after the challenger alias moved, before the run says so.
    assert _once(tmp_path, "moved:shadow") == -9
    assert state() == "gated" and project.registry.alias_version(NAME, "challenger") == 2
    _consistent(project)
    assert _restart(project) in ("in_flight", "done")
    assert state() == "shadow"

    at = _backdate(project)
    live = data(7, 400)
    traffic(project, live, served=1, shadow=2, at=at)
    labels(project, live)
    # shadow: killed after the promotion, before the run records it.
    assert _once(tmp_path, "moved:promoted") == -9
    assert state() == "shadow" and project.registry.alias_version(NAME, "champion") == 2
    _consistent(project)
    # promoted: killed after the old champion became the challenger.
    assert _once(tmp_path, "moved:watching") == -9
    assert state() == "promoted" and project.registry.alias_version(NAME, "challenger") == 1
    _consistent(project)
    assert _restart(project) in ("in_flight", "done")
    assert state() == "watching"

    at = _backdate(project)
    live = data(8, 400)
    traffic(project, live, served=2, shadow=1, at=at, broken="served")
    labels(project, live)
    # watching: killed after the rollback, before the run records it.
    assert _once(tmp_path, "moved:rolled_back") == -9
    assert state() == "watching" and project.registry.alias_version(NAME, "champion") == 1
    _consistent(project)
    # watching, again: killed after the challenger alias was removed, before the run ends.
    assert _once(tmp_path, "released:rolled_back") == -9
    assert state() == "watching" and project.registry.alias_version(NAME, "challenger") is None
    _consistent(project)
    assert _restart(project) in ("in_flight", "done")
    assert state() == "rolled_back"
    assert project.registry.alias_version(NAME, "challenger") is None  # the run ended
    _consistent(project)
    events = [e["to_state"] for e in runs.events(runs.runs(NAME)[0].id)]
    assert events == [
        "triggered",
        "trained",
        "gated",
        "shadow",
        "promoted",
        "watching",
        "rolled_back",
    ]
    champion_moves = [
        (e["from_version"], e["to_version"], e["action"])
        for e in project.registry.history(NAME, "champion")
    ]
    assert champion_moves == [(None, 1, "promote"), (1, 2, "promote"), (2, 1, "rollback")]


def _ticks(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_two_loop_processes_one_lease(tmp_path: Path, store_env: None) -> None:
    import signal

    project = make_project(tmp_path)
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    procs = []
    for out in outs:
        with out.open("w") as fh:
            procs.append(
                subprocess.Popen(
                    [MLCYCLE, "loop", "--json", "--spec", str(tmp_path)], stdout=fh, stderr=fh
                )
            )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(len(_ticks(out)) >= 3 for out in outs):
                break
            assert all(p.poll() is None for p in procs), [o.read_text() for o in outs]
            time.sleep(0.5)
    finally:
        # Stop the waiting process first, so it cannot take the lease the holder releases.
        lease = LoopStore(project.store).lease(NAME) or {"holder": ""}
        for p in sorted(procs, key=lambda p: lease["holder"].endswith(f":{p.pid}")):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
    statuses = [{tick["status"] for tick in _ticks(out)} for out in outs]
    # One process acted (idle: nothing to do), the other waited on the lease throughout.
    assert sorted(map(sorted, statuses)) == [["idle"], ["waiting"]], statuses
    holder = next(i for i, s in enumerate(statuses) if s == {"idle"})
    waiting = [t for t in _ticks(outs[1 - holder]) if t["status"] == "waiting"]
    assert waiting[0]["lease"]["holder"].endswith(f":{procs[holder].pid}")
    # The holder released its lease when stopped.
    assert LoopStore(project.store).lease(NAME) is None
