"""Run a sequence of cached steps and record every step run.

A step's cache key hashes its input artifact ids, the spec sections it reads,
anything else it declares (a source fingerprint, user code), the mlcycle
version and the versions of the libraries its output depends on. A cached
result is reused only while its output artifacts still exist and the step
agrees it still holds (``Step.still_valid``: e.g. the gate's verdict depends on
who the champion is). A failing step stops the run; nothing downstream runs,
and the next run resumes from it because everything before it is cached.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

import mlcycle
from mlcycle.errors import BadInput, StepFailed
from mlcycle.store import now
from mlcycle.store import tables as t

if TYPE_CHECKING:
    from mlcycle.pipeline.project import Project


@dataclass
class StepResult:
    outputs: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


class Step:
    """One step of the lifecycle. Subclasses set the class attributes and ``run``."""

    name: str = ""
    inputs: tuple[str, ...] = ()
    # Outputs of earlier steps used when present (e.g. model tests); never a reason to skip.
    optional_inputs: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    libraries: tuple[str, ...] = ()
    # Bump when the step's code changes what it produces, to invalidate old caches.
    revision: int = 1

    def key_extra(self, project: Project) -> str:
        return ""

    def skip_reason(self, project: Project, inputs: dict[str, str]) -> str | None:
        """Why this step should not run at all (e.g. an unblessed model is not promoted)."""
        return None

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        raise NotImplementedError

    def still_valid(self, project: Project, result: StepResult) -> bool:
        return True


@dataclass
class StepReport:
    step: str
    status: str  # ran | cached | skipped | failed
    seconds: float
    summary: dict[str, Any]
    error: str | None = None
    started_at: str = field(default_factory=now)


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


def cache_key(step: Step, project: Project, inputs: dict[str, str]) -> str:
    payload = {
        "step": step.name,
        "revision": step.revision,
        "inputs": inputs,
        "spec": project.spec.section_hash(*step.sections) if step.sections else "",
        "extra": step.key_extra(project),
        "mlcycle": mlcycle.__version__,
        "libraries": _library_versions(step.libraries),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class Runner:
    def __init__(self, project: Project, steps: Sequence[Step]) -> None:
        self.project = project
        self.steps = list(steps)

    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def run(
        self, *, until: str | None = None, force: bool = False, listener: Listener | None = None
    ) -> RunReport:
        names = self.step_names()
        if until is not None and until not in names:
            raise BadInput(
                f"unknown step '{until}'",
                "--until names the last step to run",
                f"steps: {', '.join(names)}",
            )
        store = self.project.store
        run_id = str(uuid.uuid4())
        self.project.run_id = run_id  # steps record it in lineage (e.g. the model bundle)
        started = time.perf_counter()
        with store.engine.begin() as conn:
            conn.execute(
                t.pipeline_runs.insert().values(
                    id=run_id,
                    started_at=now(),
                    status="running",
                    spec_hash=self.project.spec.hash(),
                    git_sha=self.project.git_sha,
                )
            )
        available: dict[str, str] = {}
        reports: list[StepReport] = []
        status = "succeeded"
        failure: StepFailed | None = None
        skipping: str | None = None
        for step in self.steps:
            wanted = (*step.inputs, *step.optional_inputs)
            inputs = {name: available[name] for name in wanted if name in available}
            if listener:
                listener(step.name, None)
            if skipping is None:
                missing = [name for name in step.inputs if name not in available]
                skipping = (
                    f"missing input(s): {', '.join(missing)}"
                    if missing
                    else step.skip_reason(self.project, inputs)
                )
            if skipping is not None:
                report = StepReport(step.name, "skipped", 0.0, {"reason": skipping})
                reports.append(report)
                self._record(run_id, step.name, "", report)
                if listener:
                    listener(step.name, report)
                continue
            key = cache_key(step, self.project, inputs)
            t0 = time.perf_counter()
            step_started = now()
            cached = None if force else self._cached(step, key)
            if cached is not None:
                available.update(cached.outputs)
                report = StepReport(
                    step.name,
                    "cached",
                    time.perf_counter() - t0,
                    cached.summary,
                    None,
                    step_started,
                )
            else:
                try:
                    result = step.run(self.project, inputs)
                except Exception as exc:  # every failure is recorded, then re-raised as StepFailed
                    failure = StepFailed(step.name, exc)
                    report = StepReport(
                        step.name,
                        "failed",
                        time.perf_counter() - t0,
                        {},
                        failure.message,
                        step_started,
                    )
                    reports.append(report)
                    self._record(run_id, step.name, key, report, tb=traceback.format_exc())
                    if listener:
                        listener(step.name, report)
                    status = "failed"
                    break
                self._store_cache(step, key, result)
                available.update(result.outputs)
                report = StepReport(
                    step.name, "ran", time.perf_counter() - t0, result.summary, None, step_started
                )
            reports.append(report)
            self._record(run_id, step.name, key, report)
            if listener:
                listener(step.name, report)
            if until is not None and step.name == until:
                break
        seconds = time.perf_counter() - started
        with store.engine.begin() as conn:
            conn.execute(
                t.pipeline_runs.update()
                .where(t.pipeline_runs.c.id == run_id)
                .values(status=status, ended_at=now(), message=failure.message if failure else None)
            )
        run = RunReport(run_id, status, reports, seconds, available)
        if failure is not None:
            failure.run = run  # type: ignore[attr-defined]
            raise failure
        return run

    # --- cache ----------------------------------------------------------------------

    def _cached(self, step: Step, key: str) -> StepResult | None:
        with self.project.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.step_cache.c.outputs, t.step_cache.c.summary).where(
                    t.step_cache.c.cache_key == key
                )
            ).first()
        if row is None:
            return None
        result = StepResult(json.loads(row[0]), json.loads(row[1]))
        if not all(self.project.store.has(a) for a in result.outputs.values()):
            return None
        if not step.still_valid(self.project, result):
            return None
        return result

    def _store_cache(self, step: Step, key: str, result: StepResult) -> None:
        values = {
            "step": step.name,
            "outputs": json.dumps(result.outputs, sort_keys=True),
            "summary": json.dumps(result.summary, sort_keys=True, default=str),
            "created_at": now(),
        }
        with self.project.store.engine.begin() as conn:
            updated = conn.execute(
                t.step_cache.update().where(t.step_cache.c.cache_key == key).values(**values)
            ).rowcount
            if not updated:
                conn.execute(t.step_cache.insert().values(cache_key=key, **values))

    def _record(
        self, run_id: str, step: str, key: str, report: StepReport, tb: str | None = None
    ) -> None:
        with self.project.store.engine.begin() as conn:
            conn.execute(
                t.step_runs.insert().values(
                    pipeline_run_id=run_id,
                    step=step,
                    cache_key=key,
                    status=report.status,
                    started_at=report.started_at,
                    ended_at=now(),
                    duration_s=report.seconds,
                    error=(report.error or "") + ("\n" + tb if tb else "") or None,
                    outputs=json.dumps(report.summary, default=str),
                )
            )
