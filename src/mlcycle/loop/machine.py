"""The loop's state machine: one run from trigger to production, durable across crashes.

``triggered → trained → gated → shadow → promoted → watching → done``, or
``rejected`` (the gate refused, the shadow verdict failed, or the champion moved
under the run), ``rolled_back`` (the watch verdict failed), ``failed`` (an error
that persisted for :data:`MAX_ATTEMPTS` ticks).

Each state has one handler that does the state's work and then commits the
transition (:meth:`LoopStore.transition <mlcycle.loop.state.LoopStore.transition>`,
one transaction, a compare-and-set on the state). The work is idempotent, so a
process killed anywhere (``kill -9``) and started again repeats at most the work
of the state it was in:

- the retrain is the real pipeline (``Project.run(until="register")``): every step
  done before is taken from the step cache, and registering a bundle twice gives
  the same version;
- an alias move is one registry transaction and a compare-and-set on where the
  alias pointed; a handler first looks whether its move was already made (the
  champion is already the candidate) before making it.

One tick (:meth:`Engine.tick`) takes the lease, advances the run in flight as
far as it can go, or, with none in flight, asks the policy
(:func:`mlcycle.loop.policy.decide`) whether to start one.

Example:
    >>> engine = Engine(Project.load("mlcycle.yaml"))
    >>> engine.tick()["status"]
    'idle'
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlcycle.errors import MlcycleError
from mlcycle.loop.state import (
    TERMINAL,
    Clock,
    LoopRun,
    LoopStore,
    holder_id,
    parse,
    system_clock,
)

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.loop.live import Champion
    from mlcycle.loop.verdicts import Verdict
    from mlcycle.pipeline.project import Project
    from mlcycle.pipeline.stage_ops import Registry

log = logging.getLogger("mlcycle.loop")

#: Ticks a run may fail in a row (the same state) before it is marked failed.
MAX_ATTEMPTS = 3
#: Fault injection for crash tests: ``after:<state>`` kills the process (SIGKILL) right
#: after the run entered <state>; ``moved:<state>`` after the alias move that precedes
#: entering <state>, before the transition; ``released:<state>`` after the challenger alias
#: was removed as the run ends in <state>, before the transition; ``step:<name>`` when that
#: pipeline step begins.
KILL_ENV = "MLCYCLE_LOOP_KILL"

Handler = Callable[[LoopRun], bool]
#: Who moved an alias, in the registry's alias history, when the loop did.
LOOP_ACTOR = "loop"
#: States in which a run's challenger alias is set (to the candidate, then the old champion).
_SHADOWING = frozenset({"shadow", "promoted", "watching"})


def _fault(point: str) -> None:
    """Die here, like ``kill -9``, when :data:`KILL_ENV` names this point (tests only)."""
    if os.environ.get(KILL_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


class Engine:
    """Runs the loop for one project: lease, decide, retrain, shadow, promote, watch, roll back.

    ``clock`` gives the loop's time (the wall clock by default; tests and the
    backtest pass their own). ``lease_ttl``: how long the lease holds without a
    renewal (default: three polls, at least a minute).

    Example:
        >>> Engine(project, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)).tick()
        {'model': 'flights', 'status': 'idle', 'decision': {...}, ...}
    """

    def __init__(
        self,
        project: Project,
        *,
        clock: Clock = system_clock,
        holder: str | None = None,
        lease_ttl: timedelta | None = None,
    ) -> None:
        self.project = project
        self.spec = project.spec
        self.loop = project.spec.loop
        self.name = project.name
        self.clock = clock
        self.holder = holder or holder_id()
        self.lease_ttl = lease_ttl or max(3 * self.loop.poll, timedelta(minutes=1))
        self.runs = LoopStore(project.store)
        self.handlers: dict[str, Handler] = {
            "triggered": self._retrain,
            "trained": self._retrain,
            "gated": self._after_gate,
            "shadow": self._shadow,
            "promoted": self._promoted,
            "watching": self._watch,
        }

    @property
    def registry(self) -> Registry:
        return self.project.registry

    # --- one tick -------------------------------------------------------------------

    def tick(self) -> dict[str, Any]:
        """Take the lease, advance the run in flight or decide whether to start one.

        Returns what happened: ``status`` is ``stopped`` (circuit breaker),
        ``waiting`` (another process holds the lease), ``no_champion``, ``idle``
        (nothing to do), ``in_flight`` (a run waits for rows or time) or ``done``
        (the run reached an end in this tick).
        """
        report: dict[str, Any] = {"model": self.name, "at": self.clock().isoformat()}
        stopped = self.runs.breaker(self.name)
        if stopped is not None:
            return report | {"status": "stopped", "reason": stopped["reason"]}
        if not self.renew():
            return report | {"status": "waiting", "lease": self.runs.lease(self.name)}
        try:
            run = self.runs.active(self.name)
            if run is None:
                run = self._maybe_start(report)
                if run is None:
                    return report
            report["run"] = self.advance(run.id).to_dict()
            state = report["run"]["state"]
            report["status"] = "done" if state in TERMINAL else "in_flight"
            return report
        finally:
            self.sync_alerts()

    def renew(self) -> bool:
        """Take or renew this process's lease on the model's loop."""
        return self.runs.acquire(self.name, self.holder, at=self.clock(), ttl=self.lease_ttl)

    def _maybe_start(self, report: dict[str, Any]) -> LoopRun | None:
        """Ask the policy; start a run when it says retrain (the decision goes in ``report``)."""
        from mlcycle.loop.live import gather, read_champion
        from mlcycle.loop.policy import decide

        champion = read_champion(self.project)
        if champion is None:
            report["status"] = "no_champion"
            report["reason"] = "no champion yet: run `mlcycle run` once to train the first model"
            return None
        now = self.clock()
        pending = self.runs.pending(self.name)
        decision = decide(self.loop, gather(self.project, champion, self.runs, now=now))
        report["decision"] = {
            "retrain": decision.retrain,
            "trigger": decision.trigger,
            "reason": decision.reason,
            "details": decision.details,
        }
        if not decision.retrain or decision.trigger is None:
            report["status"] = "idle"
            return None
        consume = [int(p["id"]) for p in pending] if decision.trigger == "manual" else []
        run_id = self.runs.create(
            self.name,
            trigger=decision.trigger,
            reason=decision.reason,
            decision=decision.details,
            at=now,
            consume=consume,
        )
        run = self.runs.active(self.name) if run_id is None else self.runs.run(run_id)
        log.info("loop run %s started: %s", run.id if run else "?", decision.reason)
        _fault("after:triggered")
        return run

    def advance(self, run_id: str) -> LoopRun:
        """Move the run on until it waits (for rows, time) or ends; return it as it is then."""
        for _ in range(len(self.handlers) + 2):
            run = self.runs.run(run_id)
            handler = self.handlers.get(run.state)
            if handler is None:
                return run  # terminal
            try:
                moved = handler(run)
            except Exception as exc:  # recorded on the run; retried next tick, then failed
                self._failure(run, exc)
                return self.runs.run(run_id)
            if not moved:
                return self.runs.run(run_id)
        return self.runs.run(run_id)

    def _failure(self, run: LoopRun, exc: Exception) -> None:
        message = exc.message if isinstance(exc, MlcycleError) else f"{type(exc).__name__}: {exc}"
        attempts = run.attempts + 1
        log.warning("loop run %s (%s) failed: %s", run.id, run.state, message)
        if attempts >= MAX_ATTEMPTS:
            self._move(
                run,
                "failed",
                f"{run.state} failed {attempts} times; last error: {message}",
                attempts=attempts,
                error=message,
            )
        else:
            self.runs.note(run.id, run.state, at=self.clock(), attempts=attempts, error=message)

    def _move(self, run: LoopRun, to: str, detail: str, **fields: Any) -> bool:
        if to in TERMINAL and run.state in _SHADOWING:
            # Before the transition: a crash in between repeats the (idempotent) removal.
            self._release_challenger(run, to)
        moved = self.runs.transition(
            run.id, run.state, to, at=self.clock(), detail=detail, **fields
        )
        if moved:
            log.info("loop run %s: %s → %s (%s)", run.id[:8], run.state, to, detail)
            _fault(f"after:{to}")
        return moved

    def _release_challenger(self, run: LoopRun, to: str) -> None:
        """Remove the ``challenger`` alias this run set, as the run ends.

        In shadow the run set it to the candidate, from promoted on to the previous
        champion; a server stops shadowing at its next poll. An alias someone else moved
        meanwhile (to another version) is left alone.
        """
        from mlcycle.pipeline.stage_ops import AliasConflict

        current = self.registry.alias_version(self.name, "challenger")
        if current is None or current not in (run.candidate_version, run.previous_champion):
            return
        # Moved by someone else between the read and the removal: theirs now, left alone.
        with contextlib.suppress(AliasConflict):
            self.registry.unset_alias(
                self.name,
                "challenger",
                reason=f"loop run {run.id} ended ({to}): v{current} no longer shadows",
                expected=current,
                actor=LOOP_ACTOR,
            )
        _fault(f"released:{to}")

    # --- states ---------------------------------------------------------------------

    def _retrain(self, run: LoopRun) -> bool:
        """triggered/trained: the pipeline up to register, on the spec's window, no promotion."""

        def listener(step: str, report: object) -> None:
            if report is None:
                self.renew()  # a long retrain keeps the lease
                _fault(f"step:{step}")

        report = self.project.run(until="register", window=self.loop.window, listener=listener)
        outputs = report.outputs
        if run.state == "triggered":
            trained = (
                f"model {outputs.get('model', '?')[:12]} trained (pipeline run {report.run_id})"
            )
            if not self._move(run, "trained", trained, pipeline_run_id=report.run_id):
                return True
            run = self.runs.run(run.id)
        return self._gated(run, outputs)

    def _gated(self, run: LoopRun, outputs: dict[str, str]) -> bool:
        bundle_id, blessing_id = outputs["bundle"], outputs["blessing"]
        blessing = self.project.catalog.blessing(blessing_id)
        version = next(
            v.version for v in self.registry.versions(self.name) if v.bundle_id == bundle_id
        )
        champion = self.registry.alias_version(self.name, "champion")
        verdict = "blessed" if blessing.blessed else "refused"
        detail = f"gate {verdict} v{version} (blessing {blessing_id[:12]})"
        if not blessing.blessed:
            detail += ": " + "; ".join(c.detail for c in blessing.failures)
        return self._move(
            run,
            "gated",
            detail,
            bundle_id=bundle_id,
            blessing_id=blessing_id,
            candidate_version=version,
            previous_champion=champion,
        )

    def _after_gate(self, run: LoopRun) -> bool:
        """gated: refused → rejected; blessed → challenger (shadow mode) or champion (direct)."""
        assert run.blessing_id is not None and run.candidate_version is not None
        blessing = self.project.catalog.blessing(run.blessing_id)
        if not blessing.blessed:
            failures = "; ".join(c.detail for c in blessing.failures)
            return self._move(
                run, "rejected", f"the gate refused v{run.candidate_version}: {failures}"
            )
        if run.candidate_version == run.previous_champion:
            return self._move(
                run,
                "rejected",
                f"the retrain gave the champion's own bundle (v{run.candidate_version})",
            )
        if self.loop.mode == "direct":
            return self._promote(run, verdict=None)
        if self.registry.alias_version(self.name, "challenger") != run.candidate_version:
            self.registry.set_alias(
                self.name,
                "challenger",
                run.candidate_version,
                reason=f"loop run {run.id}: blessed (blessing {run.blessing_id[:12]}), to shadow",
                actor=LOOP_ACTOR,
            )
        _fault("moved:shadow")
        return self._move(
            run, "shadow", f"v{run.candidate_version} shadows the champion as challenger"
        )

    def _shadow(self, run: LoopRun) -> bool:
        """shadow: judge the challenger on live traffic; promote it or reject it."""
        assert run.candidate_version is not None
        champion = self.registry.alias_version(self.name, "champion")
        stored = run.shadow_verdict or {}
        if champion == run.candidate_version and stored.get("status") == "passed":
            return self._move(run, "promoted", "promoted (recorded before a restart)")
        if champion != run.previous_champion:
            return self._move(
                run,
                "rejected",
                f"the champion moved to v{champion} while v{run.candidate_version} was in shadow",
            )
        assert champion is not None
        verdict = self._verdict(run, served=champion, other=run.candidate_version)
        self.runs.note(run.id, "shadow", at=self.clock(), shadow_verdict=verdict.to_dict())
        if verdict.status == "pending":
            return False
        if verdict.status == "failed":
            return self._move(run, "rejected", verdict.reason)
        return self._promote(self.runs.run(run.id), verdict=verdict)

    def _promote(self, run: LoopRun, *, verdict: Verdict | None) -> bool:
        from mlcycle.pipeline.stage_ops import AliasConflict

        assert run.candidate_version is not None and run.blessing_id is not None
        evidence = "direct mode, no shadow" if verdict is None else f"shadow: {verdict.reason}"
        reason = (
            f"loop run {run.id}: trigger {run.trigger} ({run.reason}); gate blessed "
            f"(blessing {run.blessing_id[:12]}); {evidence}"
        )
        if self.registry.alias_version(self.name, "champion") != run.candidate_version:
            try:
                self.registry.promote(
                    self.name,
                    run.candidate_version,
                    reason=reason,
                    expected=run.previous_champion,
                    actor=LOOP_ACTOR,
                )
            except AliasConflict as exc:
                return self._move(run, "rejected", f"not promoted: {exc.message}")
        _fault("moved:promoted")
        return self._move(run, "promoted", reason)

    def _promoted(self, run: LoopRun) -> bool:
        """promoted: the previous champion becomes the challenger, shadowing the new one."""
        previous = run.previous_champion
        if (
            previous is not None
            and self.registry.alias_version(self.name, "challenger") != previous
        ):
            self.registry.set_alias(
                self.name,
                "challenger",
                previous,
                reason=f"loop run {run.id}: the previous champion shadows v{run.candidate_version}",
                actor=LOOP_ACTOR,
            )
        _fault("moved:watching")
        return self._move(run, "watching", f"watching v{run.candidate_version} against v{previous}")

    def _watch(self, run: LoopRun) -> bool:
        """watching: keep the new champion, or roll it back (and maybe trip the breaker)."""
        assert run.candidate_version is not None
        champion = self.registry.alias_version(self.name, "champion")
        stored = run.watch_verdict or {}
        if champion != run.candidate_version:
            if stored.get("status") == "failed" and champion == run.previous_champion:
                return self._rolled_back(run, str(stored.get("reason")))
            return self._move(
                run, "done", f"the champion was moved to v{champion} by someone else; watch ended"
            )
        if run.previous_champion is None:
            return self._move(run, "done", "no previous champion to watch against")
        verdict = self._verdict(run, served=champion, other=run.previous_champion)
        self.runs.note(run.id, "watching", at=self.clock(), watch_verdict=verdict.to_dict())
        if verdict.status == "pending":
            return False
        if verdict.status == "passed":
            return self._move(run, "done", verdict.reason)
        self.registry.set_alias(
            self.name,
            "champion",
            run.previous_champion,
            reason=f"loop run {run.id}: automatic rollback: {verdict.reason}",
            expected=run.candidate_version,
            action="rollback",
            actor=LOOP_ACTOR,
        )
        _fault("moved:rolled_back")
        return self._rolled_back(run, verdict.reason)

    def _rolled_back(self, run: LoopRun, reason: str) -> bool:
        moved = self._move(run, "rolled_back", f"rolled back to v{run.previous_champion}: {reason}")
        if moved:
            self._breaker()
        return moved

    def _breaker(self) -> None:
        """After ``watch.max_rollbacks`` rollbacks in ``watch.breaker_period``: stop the loop."""
        watch = self.loop.watch
        now = self.clock()
        since = now - watch.breaker_period
        resumed = self.runs.resumed_at(self.name)
        if resumed is not None:
            since = max(since, parse(resumed))
        count = len(self.runs.entered(self.name, "rolled_back", since))
        if count >= watch.max_rollbacks:
            reason = (
                f"{count} automatic rollbacks since {since.isoformat()[:19]} "
                f"(watch.max_rollbacks {watch.max_rollbacks} per {watch.breaker_period}); "
                "look at `mlcycle loop history`, then `mlcycle loop resume`"
            )
            self.runs.stop(self.name, at=now, reason=reason)
            self._raise_alert("breaker", "critical", f"loop stopped: {reason}", None)

    # --- verdicts -------------------------------------------------------------------

    def _verdict(self, run: LoopRun, *, served: int, other: int) -> Verdict:
        from mlcycle.loop.live import read_champion
        from mlcycle.loop.verdicts import shadow_verdict, watch_verdict
        from mlcycle.pipeline.stage_ops import read_labels

        log_rows = self.read_log(parse(run.state_since))
        labels = read_labels(self.project.store, self.name)
        champion: Champion | None = read_champion(self.project)
        positive = None
        if champion is not None and champion.meta.positive_label is not None:
            positive = str(champion.meta.positive_label)
        common: dict[str, Any] = {
            "task": self.spec.problem.task,
            "metric": self.spec.problem.metric,
            "positive": positive,
            "started": parse(run.state_since),
            "now": self.clock(),
        }
        if run.state == "shadow":
            gate = self.spec.gates.champion
            return shadow_verdict(
                log_rows,
                labels,
                champion=served,
                challenger=other,
                shadow=self.loop.shadow,
                mode=gate.mode,
                tolerance=gate.tolerance,
                **common,
            )
        return watch_verdict(
            log_rows,
            labels,
            champion=served,
            previous=other,
            watch=self.loop.watch,
            guardrails=self.loop.shadow.guardrails,
            **common,
        )

    def read_log(self, since: datetime) -> pd.DataFrame:
        """The prediction log's rows of this model from the day of ``since`` on."""
        from mlcycle import predlog

        root = predlog.predictions_root(self.project.store.home)
        first = f"date={since.date().isoformat()}"
        paths = [p for p in predlog.list_files(root, self.name) if p.rsplit("/", 2)[-2] >= first]
        return predlog.read_files(root, paths)

    # --- alerts ---------------------------------------------------------------------

    def sync_alerts(self) -> None:
        """Send every transition of the recent runs to the alert sinks, each exactly once.

        Each event becomes a stored alert (one per run and state, so a restart
        never sends one twice, nor loses one committed just before a crash), then
        the sinks get whatever is pending.
        """
        from mlcycle.pipeline.stage_ops import deliver, sink_names, store_alerts

        alerts = []
        for run in self.runs.runs(self.name, limit=5):
            for event in self.runs.events(run.id):
                state = str(event["to_state"])
                severity = {"rolled_back": "critical", "failed": "critical"}.get(state, "info")
                alerts.append(
                    {
                        "model_version": run.candidate_version,
                        "window": f"loop:{run.id[:12]}:{state}",
                        "rule": f"loop:{state}",
                        "metric": "loop",
                        "value": None,
                        "bound": "",
                        "severity": severity,
                        "message": f"loop run {run.id[:8]} ({run.trigger}) "
                        f"{event['from_state'] or 'started'} → {state}: {event['detail']}",
                    }
                )
        sinks = self.spec.monitor.sinks
        try:
            store_alerts(self.project.store, self.name, alerts, sink_names(sinks))
            deliver(self.project.store, self.name, sinks, self.project.base_dir)
        except Exception as exc:  # a sink's trouble must not stop the loop; retried next tick
            log.warning("loop alerts not delivered: %s", exc)

    def _raise_alert(self, name: str, severity: str, message: str, version: int | None) -> None:
        from mlcycle.pipeline.stage_ops import sink_names, store_alerts

        alert = {
            "model_version": version,
            "window": f"loop:{self.clock().isoformat()[:19]}",
            "rule": f"loop:{name}",
            "metric": "loop",
            "value": None,
            "bound": "",
            "severity": severity,
            "message": message,
        }
        store_alerts(self.project.store, self.name, [alert], sink_names(self.spec.monitor.sinks))
