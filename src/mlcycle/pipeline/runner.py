"""Run a sequence of cached steps and record every step run.

A step's cache key hashes its input artifact ids, the spec sections it reads,
anything else it declares (a source fingerprint, user code), the mlcycle
version and the versions of the libraries its output depends on. A cached
result is reused only while its output artifacts still exist and the step
agrees it still holds (``Step.still_valid``: e.g. the gate's verdict depends on
who the champion is). A failing step stops the run; nothing downstream runs,
and the next run resumes from it because everything before it is cached.

A step is a declaration: the artifacts it takes (``inputs``, by name) and makes
(``outputs``), the spec sections and libraries its cache key covers, and a
``run`` that calls one stage function. The runner resolves the input ids
through the catalog (:class:`~mlcycle.pipeline.catalog.Inputs`) and records
what comes out.

Example:
    >>> runner = Runner(project.context(), LIFECYCLE)
    >>> runner.run(until="train").status
    'succeeded'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from mlcycle.errors import BadInput, StepFailed
from mlcycle.pipeline.catalog import Inputs
from mlcycle.pipeline.context import RunContext
from mlcycle.pipeline.runlog import RunLog
from mlcycle.store import now
from mlcycle.version import __version__


@dataclass
class StepResult:
    """The artifact ids a step made (by output name) and its summary for people."""

    outputs: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


class Step:
    """One step of the lifecycle. Subclasses set the class attributes and ``run``.

    Example:
        >>> class Split(Step):
        ...     name, inputs, outputs = "split", ("dataset",), ("splits",)
        ...     sections = ("problem", "prepare")
        ...     def run(self, ctx, inputs):
        ...         record, frames = prep.split_dataset(inputs.dataset_frame(), ...)
        ...         return StepResult({"splits": ctx.catalog.save_splits(record, frames, ...)})
    """

    name: str = ""
    inputs: tuple[str, ...] = ()
    # Outputs of earlier steps used when present (e.g. model tests); never a reason to skip.
    optional_inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()
    # Bump when the step's code changes what it produces, to invalidate old caches.
    revision: int = 1

    def key_extra(self, ctx: RunContext) -> str:
        """Whatever else the output depends on (a source fingerprint, user code)."""
        return ""

    def skip_reason(self, ctx: RunContext, inputs: Inputs) -> str | None:
        """Why this step should not run at all (e.g. an unblessed model is not promoted)."""
        return None

    def run(self, ctx: RunContext, inputs: Inputs) -> StepResult:
        raise NotImplementedError

    def still_valid(self, ctx: RunContext, result: StepResult) -> bool:
        """Whether a cached result still holds (beyond its inputs being the same)."""
        return True


@dataclass
class StepReport:
    step: str
    status: str  # ran | cached | skipped | failed (| killed: only in the step_runs row)
    seconds: float
    summary: dict[str, Any]
    error: str | None = None
    started_at: str = field(default_factory=now)


@dataclass
class _Current:
    """The step in progress, so an interruption can record where the run stopped."""

    step: str | None = None
    started: str = ""
    t0: float = 0.0

    def begin(self, step: str) -> None:
        self.step, self.started, self.t0 = step, now(), time.perf_counter()

    def end(self) -> None:
        self.step = None


@dataclass
class RunReport:
    run_id: str
    status: str  # succeeded | failed
    steps: list[StepReport]
    seconds: float
    outputs: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "outputs": self.outputs,
            "steps": [s.__dict__ for s in self.steps],
        }


Listener = Callable[[str, StepReport | None], None]


def _library_versions(names: Sequence[str]) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def cache_key(step: Step, ctx: RunContext, inputs: dict[str, str]) -> str:
    """The hash that decides whether a step's earlier result can be reused (module docs).

    Example:
        >>> cache_key(Split(), ctx, {"dataset": dataset_id, "validation": report_id})[:12]
        '5f0c2a9e41b7'
    """
    payload = {
        "step": step.name,
        "revision": step.revision,
        "inputs": inputs,
        "spec": ctx.spec.section_hash(*step.sections) if step.sections else "",
        "extra": step.key_extra(ctx),
        "mlcycle": __version__,
        "libraries": _library_versions(step.libraries),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class Runner:
    """Runs steps in order against one project context, caching and recording each."""

    def __init__(self, ctx: RunContext, steps: Sequence[Step]) -> None:
        self.ctx = ctx
        self.steps = list(steps)
        self.log = RunLog(ctx.store)
        # Open for a run: the thread cap is entered into it before the first step that
        # computes (a run whose every step is cached never measures the machine).
        self._cap: contextlib.ExitStack | None = None
        self._capped = False

    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def run(
        self, *, until: str | None = None, force: bool = False, listener: Listener | None = None
    ) -> RunReport:
        """Run every step (up to ``until``), reusing cached results unless ``force``.

        However the run ends, its row does not stay ``running``: a step's error
        fails it (``StepFailed``, raised after recording); Ctrl-C or SIGTERM marks
        it and the step in progress ``killed`` and re-raises; a process killed
        outright is marked ``killed`` by the next start (:meth:`RunLog.reap`).
        """
        from mlcycle.train.tracking.process import install_sigterm

        names = self.step_names()
        if until is not None and until not in names:
            raise BadInput(
                f"unknown step '{until}'",
                "--until names the last step to run",
                f"steps: {', '.join(names)}",
            )
        # SIGTERM unwinds as SystemExit (where nobody else handles it), so the
        # `except BaseException` below records the run as killed.
        install_sigterm()
        run_id = self._start()
        current = _Current()
        try:
            with contextlib.ExitStack() as self._cap:
                self._capped = False
                return self._walk(run_id, until, force, listener, current)
        except StepFailed:
            raise  # recorded by _finish
        except BaseException as exc:
            self._interrupted(run_id, current, exc)
            raise

    def _walk(
        self,
        run_id: str,
        until: str | None,
        force: bool,
        listener: Listener | None,
        current: _Current,
    ) -> RunReport:
        started = time.perf_counter()
        available: dict[str, str] = {}
        reports: list[StepReport] = []
        failure: StepFailed | None = None
        skipping: str | None = None
        for step in self.steps:
            wanted = (*step.inputs, *step.optional_inputs)
            inputs = {name: available[name] for name in wanted if name in available}
            if listener:
                listener(step.name, None)
            current.begin(step.name)
            if skipping is None:
                skipping = self._skip_reason(step, inputs)
            if skipping is not None:
                report = StepReport(step.name, "skipped", 0.0, {"reason": skipping})
                key, tb = "", None
            else:
                key, report, failure, tb = self._execute(step, inputs, force, available)
            reports.append(report)
            self._record(run_id, step.name, key, report, tb=tb)
            current.end()
            if listener:
                listener(step.name, report)
            if failure is not None or (until is not None and step.name == until):
                break
        return self._finish(run_id, reports, available, failure, time.perf_counter() - started)

    def _interrupted(self, run_id: str, current: _Current, exc: BaseException) -> None:
        """Record a run cut short by a signal (``killed``) or an error outside any step."""
        status = "failed" if isinstance(exc, Exception) else "killed"
        if isinstance(exc, KeyboardInterrupt):
            message = "interrupted (Ctrl-C)"
        elif isinstance(exc, SystemExit):
            message = f"stopped (SystemExit {exc.code}: SIGTERM or an exit inside a step)"
        else:
            message = f"{type(exc).__name__}: {exc}"
        try:
            if current.step is not None:
                seconds = time.perf_counter() - current.t0
                report = StepReport(current.step, status, seconds, {}, message, current.started)
                tb = traceback.format_exc()
                self._record(run_id, current.step, "", report, tb=tb)
            self.log.finish(run_id, status=status, message=message)
        except Exception:  # a failure to record it must not hide the interruption itself
            pass

    def _start(self) -> str:
        run_id = str(uuid.uuid4())
        self.ctx.run_id = run_id  # steps record it in lineage (e.g. the model bundle)
        self.log.start(run_id, spec_hash=self.ctx.spec.hash(), git_sha=self.ctx.git_sha)
        return run_id

    def _cap_threads(self) -> None:
        """Fitting, scoring and evaluating all run OpenMP: cap it at the cores free now,
        once per run, for the rest of it (``train/threads.py``)."""
        if self._cap is None or self._capped:
            return
        from mlcycle.train.threads import fitting_threads

        self._cap.enter_context(fitting_threads())
        self._capped = True

    def _skip_reason(self, step: Step, inputs: dict[str, str]) -> str | None:
        missing = [name for name in step.inputs if name not in inputs]
        if missing:
            return f"missing input(s): {', '.join(missing)}"
        return step.skip_reason(self.ctx, Inputs(self.ctx.catalog, inputs))

    def _execute(
        self,
        step: Step,
        inputs: dict[str, str],
        force: bool,
        available: dict[str, str],
    ) -> tuple[str, StepReport, StepFailed | None, str | None]:
        """Take the step's result from the cache or run it; add its outputs to ``available``.

        Returns the cache key, the report, and the failure with its traceback when
        the step failed (its cache key included: a source that is gone fails there).
        """
        t0 = time.perf_counter()
        step_started = now()
        key = ""
        try:
            key = cache_key(step, self.ctx, inputs)
            cached = None if force else self._cached(step, key)
            if cached is not None:
                available.update(cached.outputs)
                seconds = time.perf_counter() - t0
                report = StepReport(
                    step.name, "cached", seconds, cached.summary, None, step_started
                )
                return key, report, None, None
            self._cap_threads()
            result = step.run(self.ctx, Inputs(self.ctx.catalog, inputs))
            undeclared = set(result.outputs) - set(step.outputs)
            if undeclared:
                raise RuntimeError(f"step {step.name} made undeclared output(s) {undeclared}")
        except Exception as exc:  # every failure is recorded, then re-raised as StepFailed
            failure = StepFailed(step.name, exc)
            seconds = time.perf_counter() - t0
            report = StepReport(step.name, "failed", seconds, {}, failure.message, step_started)
            return key, report, failure, traceback.format_exc()
        self._store_cache(step, key, result)
        available.update(result.outputs)
        seconds = time.perf_counter() - t0
        report = StepReport(step.name, "ran", seconds, result.summary, None, step_started)
        return key, report, None, None

    def _finish(
        self,
        run_id: str,
        reports: list[StepReport],
        available: dict[str, str],
        failure: StepFailed | None,
        seconds: float,
    ) -> RunReport:
        status = "failed" if failure is not None else "succeeded"
        self.log.finish(run_id, status=status, message=failure.message if failure else None)
        run = RunReport(run_id, status, reports, seconds, available)
        if failure is not None:
            failure.run = run  # type: ignore[attr-defined]
            raise failure
        return run

    # --- cache and records -----------------------------------------------------------

    def _cached(self, step: Step, key: str) -> StepResult | None:
        found = self.log.cached(key)
        if found is None:
            return None
        result = StepResult(*found)
        return result if step.still_valid(self.ctx, result) else None

    def _store_cache(self, step: Step, key: str, result: StepResult) -> None:
        self.log.remember(step.name, key, result.outputs, result.summary)

    def _record(
        self, run_id: str, step: str, key: str, report: StepReport, tb: str | None = None
    ) -> None:
        self.log.record_step(
            run_id,
            step,
            key,
            status=report.status,
            started_at=report.started_at,
            seconds=report.seconds,
            summary=report.summary,
            error=(report.error or "") + ("\n" + tb if tb else "") or None,
        )
