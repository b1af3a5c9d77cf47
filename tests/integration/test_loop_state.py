"""The loop's tables on SQLite and PostgreSQL: one run in flight, compare-and-set
transitions, manual triggers taken once, the lease and the breaker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlcycle.errors import BadInput
from mlcycle.loop.state import LoopStore
from mlcycle.store import Store

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_one_run_in_flight_and_transitions_are_compare_and_set(store: Store) -> None:
    runs = LoopStore(store)
    request = runs.request("m", "new data", by="ana", at=T0)
    run_id = runs.create(
        "m", trigger="manual", reason="r", decision={"x": 1}, at=T0, consume=[request]
    )
    assert run_id is not None
    assert runs.pending("m") == []  # taken by the run
    assert runs.create("m", trigger="schedule", reason="r2", decision={}, at=T0) is None
    assert runs.transition(run_id, "triggered", "trained", at=T0, detail="d", pipeline_run_id="p")
    # The same transition again (a restarted process): nothing happens.
    assert not runs.transition(run_id, "triggered", "trained", at=T0, detail="d")
    assert runs.transition(run_id, "trained", "rejected", at=T0, detail="no")
    run = runs.run(run_id)
    assert (run.state, run.pipeline_run_id, run.decision) == ("rejected", "p", {"x": 1})
    assert [e["to_state"] for e in runs.events(run_id)] == ["triggered", "trained", "rejected"]
    # Ended: a new run may start.
    assert runs.create("m", trigger="schedule", reason="r3", decision={}, at=T0) is not None
    with pytest.raises(BadInput):
        runs.request("m", "  ", by="ana", at=T0)


def test_the_lease_is_held_renewed_and_taken_over_once_expired(store: Store) -> None:
    runs = LoopStore(store)
    ttl = timedelta(minutes=1)
    assert runs.acquire("m", "a:1", at=T0, ttl=ttl)
    assert not runs.acquire("m", "b:2", at=T0 + timedelta(seconds=59), ttl=ttl)
    assert runs.acquire("m", "a:1", at=T0 + timedelta(seconds=50), ttl=ttl)  # renewed
    assert not runs.acquire("m", "b:2", at=T0 + timedelta(seconds=100), ttl=ttl)
    assert runs.acquire("m", "b:2", at=T0 + timedelta(seconds=111), ttl=ttl)
    assert runs.lease("m")["holder"] == "b:2"
    runs.release("m", "b:2")
    assert runs.acquire("m", "a:1", at=T0 + timedelta(seconds=112), ttl=ttl)


def test_a_lease_of_a_dead_process_on_this_host_is_free(store: Store) -> None:
    import socket
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    runs = LoopStore(store)
    ttl = timedelta(hours=1)
    assert runs.acquire("m", f"{socket.gethostname()}:{dead.stdout.strip()}", at=T0, ttl=ttl)
    assert runs.acquire("m", "me:1", at=T0, ttl=ttl)


def test_the_breaker_stops_until_resumed(store: Store) -> None:
    runs = LoopStore(store)
    assert runs.breaker("m") is None
    runs.stop("m", at=T0, reason="2 rollbacks")
    assert runs.breaker("m")["reason"] == "2 rollbacks"
    assert runs.resume("m", at=T0)
    assert runs.breaker("m") is None and runs.resumed_at("m") is not None
    assert not runs.resume("m", at=T0)
