"""The loop's state machine on a real small project, a real store and the real pipeline.

The loop's clock is driven by the test; live traffic is written to the prediction
log by the real bundles, as ``mlcycle serve --shadow`` writes it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loop_fixtures import NAME, add_data, data, labels, make_project, traffic
from mlcycle.loop.machine import Engine
from mlcycle.loop.state import LoopStore
from mlcycle.monitor.alerts import list_alerts


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _states(runs: LoopStore, run_id: str) -> list[str]:
    return [e["to_state"] for e in runs.events(run_id)]


def test_a_manual_trigger_goes_through_every_state_once(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    add_data(tmp_path)
    clock = FakeClock(T0)
    engine = Engine(project, clock=clock)
    runs = engine.runs
    # Nothing asked, nothing due: idle, and no run.
    assert engine.tick()["status"] == "idle"
    runs.request(NAME, "new fares", by="test", at=clock())
    report = engine.tick()
    run_id = report["run"]["id"]
    assert report["run"]["state"] == "shadow"
    assert report["decision"]["trigger"] == "manual"
    assert project.registry.alias_version(NAME, "challenger") == 2
    # Debounced: the request was taken by this run, a second tick starts nothing new.
    assert runs.pending(NAME) == []

    live = data(7, 400)
    traffic(project, live, served=1, shadow=2, at=clock.advance(seconds=10))
    labels(project, live)
    clock.advance(seconds=30)  # enough rows, not enough time (min_duration 1m)
    assert engine.tick()["run"]["state"] == "shadow"
    clock.advance(minutes=2)
    report = engine.tick()
    assert report["run"]["state"] == "watching"
    assert report["run"]["shadow_verdict"]["status"] == "passed"
    assert report["run"]["shadow_verdict"]["test"]["test"] == "delong"
    assert project.registry.alias_version(NAME, "champion") == 2
    assert project.registry.alias_version(NAME, "challenger") == 1  # keeps shadowing

    promoted = project.registry.history(NAME, "champion")[-1]
    assert run_id in promoted["reason"] and "blessing" in promoted["reason"]
    assert "manual" in promoted["reason"] and "shadow:" in promoted["reason"]

    live = data(8, 400)
    traffic(project, live, served=2, shadow=1, at=clock.advance(seconds=10))
    labels(project, live)
    clock.advance(minutes=2)
    report = engine.tick()
    assert report["run"]["state"] == "done", report["run"]
    assert _states(runs, run_id) == [
        "triggered",
        "trained",
        "gated",
        "shadow",
        "promoted",
        "watching",
        "done",
    ]
    # Every transition reached the alert sinks (the log sink at least), once.
    sent = [a for a in list_alerts(project.store, NAME) if a["rule"].startswith("loop:")]
    assert sorted(a["rule"] for a in sent) == sorted(f"loop:{s}" for s in _states(runs, run_id))
    assert all(a["pending"] == [] for a in sent)
    # The run ended: the old champion no longer shadows; every move names the loop.
    assert project.registry.alias_version(NAME, "challenger") is None
    moves = project.registry.history(NAME, "challenger")
    assert [m["to_version"] for m in moves] == [2, 1, None]
    assert moves[-1]["action"] == "unset" and run_id in moves[-1]["reason"]
    assert {m["actor"] for m in moves} == {"loop"}
    assert project.registry.history(NAME, "champion")[-1]["actor"] == "loop"
    assert engine.tick()["status"] == "idle"


def test_a_bad_new_champion_is_rolled_back_and_the_breaker_trips(tmp_path: Path) -> None:
    project = make_project(tmp_path, mode="direct")
    clock = FakeClock(T0)
    engine = Engine(project, clock=clock)
    runs = engine.runs
    for attempt, seed in enumerate((2, 3)):
        add_data(tmp_path, seed=seed)
        runs.request(NAME, f"attempt {attempt}", by="test", at=clock.advance(minutes=1))
        report = engine.tick()
        new, old = report["run"]["candidate_version"], report["run"]["previous_champion"]
        assert report["run"]["state"] == "watching"
        assert project.registry.alias_version(NAME, "champion") == new
        # In production the new champion answers wrongly (a serving-time bug the gate
        # could not see): its probabilities are turned around.
        live = data(20 + attempt, 400)
        traffic(project, live, served=new, shadow=old, at=clock.advance(seconds=5), broken="served")
        labels(project, live)
        clock.advance(seconds=20)  # within the watch window: min_rows are in, duration is not
        report = engine.tick()
        assert report["run"]["state"] == "rolled_back", report["run"]
        assert project.registry.alias_version(NAME, "champion") == old
        last = project.registry.history(NAME, "champion")[-1]
        assert last["action"] == "rollback" and report["run"]["id"] in last["reason"]
        assert last["actor"] == "loop"
        assert project.registry.alias_version(NAME, "challenger") is None
    # Two rollbacks within watch.breaker_period: the loop stopped itself and said so.
    report = engine.tick()
    assert report["status"] == "stopped"
    assert "2 automatic rollbacks" in report["reason"]
    rules = [a["rule"] for a in list_alerts(project.store, NAME)]
    assert "loop:breaker" in rules
    runs.request(NAME, "after the fix", by="test", at=clock())
    assert engine.tick()["status"] == "stopped"  # a trigger does not pass a tripped breaker
    assert runs.resume(NAME, at=clock.advance(minutes=1))
    assert engine.tick()["status"] != "stopped"


def test_a_shadow_that_fails_its_guardrails_is_rejected(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    add_data(tmp_path)
    clock = FakeClock(T0)
    engine = Engine(project, clock=clock)
    engine.runs.request(NAME, "try", by="test", at=clock())
    run_id = engine.tick()["run"]["id"]
    # No labels; the challenger fails on a fifth of the rows (no shadow row for them).
    traffic(
        project, data(9, 400), served=1, shadow=2, at=clock.advance(seconds=5), shadow_share=0.8
    )
    clock.advance(seconds=10)
    report = engine.tick()
    assert report["run"]["state"] == "rejected"
    assert "error_rate" in str(report["run"]["shadow_verdict"]["checks"])
    assert project.registry.alias_version(NAME, "champion") == 1
    assert project.registry.alias_version(NAME, "challenger") is None  # v2 shadows no more
    assert _states(engine.runs, run_id)[-1] == "rejected"


def test_two_engines_one_lease(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    clock = FakeClock(T0)
    first = Engine(project, clock=clock, holder="host-a:1", lease_ttl=timedelta(minutes=1))
    second = Engine(project, clock=clock, holder="host-b:2", lease_ttl=timedelta(minutes=1))
    assert first.tick()["status"] == "idle"
    waiting = second.tick()
    assert waiting["status"] == "waiting" and waiting["lease"]["holder"] == "host-a:1"
    clock.advance(seconds=30)
    assert first.tick()["status"] == "idle"  # renewed
    clock.advance(seconds=45)
    assert second.tick()["status"] == "waiting"  # still within the renewed lease
    clock.advance(seconds=30)  # the holder stopped renewing: the lease expired
    assert second.tick()["status"] == "idle"
    assert first.tick()["status"] == "waiting"


@pytest.mark.parametrize("window", [{"last_rows": 900}])
def test_the_retrain_uses_the_spec_window(tmp_path: Path, window: dict) -> None:
    project = make_project(tmp_path, window=window)
    add_data(tmp_path)
    clock = FakeClock(T0)
    engine = Engine(project, clock=clock)
    engine.runs.request(NAME, "window", by="test", at=clock())
    report = engine.tick()
    from mlcycle.store.queries import run_outputs

    steps = run_outputs(project.store, report["run"]["pipeline_run_id"])
    splits_id = next(s["outputs"]["splits"] for s in steps if s["step"] == "split")
    rows = project.catalog.store.record(splits_id)["rows"]
    assert sum(rows.values()) == 900
