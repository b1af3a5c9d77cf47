"""The loop's durable state in the store: runs, their events, manual triggers, the lease
between loop processes and the circuit breaker.

Every state change of a run is one transaction: a compare-and-set on the run's
state (``UPDATE … WHERE state = <from>``) plus one ``loop_events`` row. A second
process, or the same one restarted after ``kill -9``, that tries the same
change finds the state already moved and does nothing.

Times are the loop's clock (:data:`Clock`), written as ISO-8601 UTC with
milliseconds, so comparing two of them as text compares the instants.

Example:
    >>> runs = LoopStore(store)
    >>> run_id = runs.create("flights", trigger="manual", reason="new fares", decision={},
    ...                      at=datetime.now(UTC))
    >>> runs.transition(run_id, "triggered", "trained", at=datetime.now(UTC), detail="…")
    True
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mlcycle.errors import BadInput
from mlcycle.store import Store
from mlcycle.store import tables as t

Clock = Callable[[], datetime]

#: States a run moves through, in order; a run ends in one of TERMINAL.
FLOW = ("triggered", "trained", "gated", "shadow", "promoted", "watching", "done")
TERMINAL = frozenset({"done", "rejected", "rolled_back", "failed"})
ACTIVE = frozenset(FLOW) - TERMINAL


def system_clock() -> datetime:
    """The wall clock, in UTC: the default :data:`Clock`."""
    return datetime.now(UTC)


def stamp(at: datetime) -> str:
    """``at`` as the text the loop's tables hold (comparable as text).

    Example:
        >>> stamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
        '2026-01-02T03:04:05.000+00:00'
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def parse(text: str) -> datetime:
    """The inverse of :func:`stamp`."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def holder_id() -> str:
    """This process, as a lease holder: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_gone(holder: str) -> bool:
    """True when ``holder`` is a process of this host that no longer exists (kill -9)."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class LoopRun:
    """One row of ``loop_runs``, decoded."""

    id: str
    model: str
    state: str
    trigger: str
    reason: str
    decision: dict[str, Any]
    pipeline_run_id: str | None
    bundle_id: str | None
    blessing_id: str | None
    candidate_version: int | None
    previous_champion: int | None
    shadow_verdict: dict[str, Any] | None
    watch_verdict: dict[str, Any] | None
    state_since: str
    created_at: str
    updated_at: str
    attempts: int
    error: str | None

    @classmethod
    def of(cls, row: Any) -> LoopRun:
        data = dict(row)
        for key in ("decision", "shadow_verdict", "watch_verdict"):
            data[key] = json.loads(data[key]) if data[key] else None
        data["decision"] = data["decision"] or {}
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class LoopStore:
    """Reads and writes of the loop's tables; every write is one short transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # --- runs -----------------------------------------------------------------------

    def create(
        self,
        model: str,
        *,
        trigger: str,
        reason: str,
        decision: dict[str, Any],
        at: datetime,
        consume: Sequence[int] = (),
    ) -> str | None:
        """Start a run in state ``triggered``; None if the model already has one in flight.

        The manual trigger requests in ``consume`` are marked taken by the new run
        in the same transaction, so a request starts exactly one run.
        """
        run_id = str(uuid.uuid4())
        when = stamp(at)
        self._ensure(model)
        with self.engine.begin() as conn:
            self._lock(conn, model)
            busy = conn.execute(
                sa.select(t.loop_runs.c.id).where(
                    t.loop_runs.c.model == model, t.loop_runs.c.state.in_(sorted(ACTIVE))
                )
            ).first()
            if busy is not None:
                return None
            conn.execute(
                t.loop_runs.insert().values(
                    id=run_id,
                    model=model,
                    state="triggered",
                    trigger=trigger,
                    reason=reason,
                    decision=json.dumps(decision, default=str),
                    state_since=when,
                    created_at=when,
                    updated_at=when,
                    attempts=0,
                )
            )
            conn.execute(
                t.loop_events.insert().values(
                    run_id=run_id, from_state=None, to_state="triggered", at=when, detail=reason
                )
            )
            if consume:
                conn.execute(
                    t.loop_triggers.update()
                    .where(t.loop_triggers.c.id.in_(list(consume)))
                    .where(t.loop_triggers.c.consumed_by.is_(None))
                    .values(consumed_by=run_id)
                )
        return run_id

    def _ensure(self, model: str) -> None:
        """The model's breaker row exists (it is also what :meth:`_lock` locks)."""
        with self.engine.connect() as conn:
            exists = conn.execute(
                sa.select(t.loop_breakers.c.model).where(t.loop_breakers.c.model == model)
            ).first()
        if exists is not None:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(t.loop_breakers.insert().values(model=model))
        except sa.exc.IntegrityError:
            pass  # another process made it first

    def _lock(self, conn: sa.Connection, model: str) -> None:
        """Serialize writers per model (a row lock on PostgreSQL, the write lock on SQLite).

        The row must exist (:meth:`_ensure`, in a transaction of its own before).
        """
        conn.execute(
            t.loop_breakers.update()
            .where(t.loop_breakers.c.model == model)
            .values(model=t.loop_breakers.c.model)
        )

    def transition(
        self,
        run_id: str,
        from_state: str,
        to_state: str,
        *,
        at: datetime,
        detail: str,
        **fields: Any,
    ) -> bool:
        """Move a run from ``from_state`` to ``to_state`` with ``fields``; False if it had moved.

        One transaction: the compare-and-set on the state, the fields, the event.
        """
        when = stamp(at)
        values = {k: _encode(k, v) for k, v in fields.items()}
        with self.engine.begin() as conn:
            moved = conn.execute(
                t.loop_runs.update()
                .where(t.loop_runs.c.id == run_id, t.loop_runs.c.state == from_state)
                .values(state=to_state, state_since=when, updated_at=when, **values)
            ).rowcount
            if moved != 1:
                return False
            conn.execute(
                t.loop_events.insert().values(
                    run_id=run_id, from_state=from_state, to_state=to_state, at=when, detail=detail
                )
            )
        return True

    def note(self, run_id: str, state: str, *, at: datetime, **fields: Any) -> bool:
        """Record ``fields`` (a verdict so far, an error) on a run still in ``state``."""
        values = {k: _encode(k, v) for k, v in fields.items()}
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    t.loop_runs.update()
                    .where(t.loop_runs.c.id == run_id, t.loop_runs.c.state == state)
                    .values(updated_at=stamp(at), **values)
                ).rowcount
                == 1
            )

    def run(self, run_id: str) -> LoopRun:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(t.loop_runs).where(t.loop_runs.c.id == run_id))
                .mappings()
                .first()
            )
        if row is None:
            raise BadInput(f"no loop run {run_id}", "", "see `mlcycle loop history`")
        return LoopRun.of(row)

    def active(self, model: str) -> LoopRun | None:
        """The model's run in flight (not in a terminal state), if any."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(t.loop_runs)
                    .where(t.loop_runs.c.model == model, t.loop_runs.c.state.in_(sorted(ACTIVE)))
                    .order_by(t.loop_runs.c.created_at.desc())
                )
                .mappings()
                .first()
            )
        return None if row is None else LoopRun.of(row)

    def runs(self, model: str, limit: int = 50) -> list[LoopRun]:
        """The model's runs, newest first."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(t.loop_runs)
                    .where(t.loop_runs.c.model == model)
                    .order_by(t.loop_runs.c.created_at.desc(), t.loop_runs.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [LoopRun.of(r) for r in rows]

    def events(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(t.loop_events)
                    .where(t.loop_events.c.run_id == run_id)
                    .order_by(t.loop_events.c.id)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def entered(self, model: str, state: str, since: datetime) -> list[str]:
        """When the model's runs entered ``state`` at or after ``since`` (for the breaker)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.loop_events.c.at)
                .join(t.loop_runs, t.loop_runs.c.id == t.loop_events.c.run_id)
                .where(
                    t.loop_runs.c.model == model,
                    t.loop_events.c.to_state == state,
                    t.loop_events.c.at >= stamp(since),
                )
            ).all()
        return [str(r[0]) for r in rows]

    # --- manual triggers ------------------------------------------------------------

    def request(self, model: str, reason: str, *, by: str, at: datetime) -> int:
        """Queue a manual trigger; the next tick's policy sees it."""
        if not reason.strip():
            raise BadInput(
                "a manual trigger needs a reason",
                "every loop run records why it started",
                'pass --reason "why retrain now"',
            )
        with self.engine.begin() as conn:
            result = conn.execute(
                t.loop_triggers.insert().values(
                    model=model, reason=reason, requested_by=by, requested_at=stamp(at)
                )
            )
            key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def pending(self, model: str) -> list[dict[str, Any]]:
        """Manual trigger requests no run has taken yet, oldest first."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(t.loop_triggers)
                    .where(
                        t.loop_triggers.c.model == model, t.loop_triggers.c.consumed_by.is_(None)
                    )
                    .order_by(t.loop_triggers.c.id)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    # --- lease ----------------------------------------------------------------------

    def acquire(self, model: str, holder: str, *, at: datetime, ttl: timedelta) -> bool:
        """Take or renew the model's lease until ``at + ttl``; False when another holds it.

        A lease is free when it expired, or when its holder is a process of this
        host that is gone (killed), so a restart need not wait for the expiry.
        """
        now, until = stamp(at), stamp(at + ttl)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.loop_leases.c.holder, t.loop_leases.c.expires_at).where(
                    t.loop_leases.c.model == model
                )
            ).first()
        if row is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        t.loop_leases.insert().values(
                            model=model, holder=holder, expires_at=until, acquired_at=now
                        )
                    )
                return True
            except sa.exc.IntegrityError:
                return False  # another process took it this instant
        with self.engine.begin() as conn:
            current, expires = str(row[0]), str(row[1])
            free = current == holder or expires < now or _holder_gone(current)
            if not free:
                return False
            values: dict[str, str] = {"holder": holder, "expires_at": until}
            if current != holder:
                values["acquired_at"] = now
            moved = conn.execute(
                t.loop_leases.update()
                .where(
                    t.loop_leases.c.model == model,
                    t.loop_leases.c.holder == current,
                    t.loop_leases.c.expires_at == expires,
                )
                .values(**values)
            ).rowcount
        return moved == 1

    def release(self, model: str, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.loop_leases.delete().where(
                    t.loop_leases.c.model == model, t.loop_leases.c.holder == holder
                )
            )

    def lease(self, model: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(t.loop_leases).where(t.loop_leases.c.model == model))
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    # --- circuit breaker ------------------------------------------------------------

    def stop(self, model: str, *, at: datetime, reason: str) -> None:
        self._ensure(model)
        with self.engine.begin() as conn:
            self._lock(conn, model)
            conn.execute(
                t.loop_breakers.update()
                .where(t.loop_breakers.c.model == model)
                .values(stopped_at=stamp(at), reason=reason, resumed_at=None)
            )

    def resume(self, model: str, *, at: datetime) -> bool:
        """Clear the breaker; False when the loop was not stopped."""
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    t.loop_breakers.update()
                    .where(
                        t.loop_breakers.c.model == model, t.loop_breakers.c.stopped_at.is_not(None)
                    )
                    .values(stopped_at=None, resumed_at=stamp(at))
                ).rowcount
                == 1
            )

    def breaker(self, model: str) -> dict[str, Any] | None:
        """The breaker's row when the loop is stopped, else None."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(t.loop_breakers).where(
                        t.loop_breakers.c.model == model, t.loop_breakers.c.stopped_at.is_not(None)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def resumed_at(self, model: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(t.loop_breakers.c.resumed_at).where(t.loop_breakers.c.model == model)
            ).scalar()
        return None if value is None else str(value)


def _encode(key: str, value: Any) -> Any:
    if key in ("shadow_verdict", "watch_verdict", "decision") and value is not None:
        return json.dumps(value, default=str)
    return value
