"""What the loop page reads: the continuous-training loop of a model (its run in
flight, breaker, pending triggers, runs and one run's transitions), the rollbacks
in its alias history, and the latest backtest report.

Example:
    >>> state = loop_state(store, "flights")
    >>> [r["state"] for r in state["runs"]][:2]
    ['done', 'rolled_back']
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle.errors import NotFound
from mlcycle.registry.models import Registry
from mlcycle.store import Store

if TYPE_CHECKING:
    from mlcycle.pipeline.project import Project

# Where `mlcycle loop backtest` writes its report unless told otherwise (-o).
BACKTEST_FILE = "backtest.html"


def loop_summary(store: Store, model: str) -> dict[str, Any]:
    """For the overview: the loop's run in flight and whether it is stopped."""
    from mlcycle.loop.state import LoopStore

    loop = LoopStore(store)
    active = loop.active(model)
    return {"active": active.to_dict() if active else None, "breaker": loop.breaker(model)}


def loop_state(store: Store, model: str, run_id: str | None = None) -> dict[str, Any]:
    """The continuous-training loop of ``model``: its run in flight, whether it is
    stopped, pending manual triggers, its runs (newest first), one run's events,
    and every rollback of the model's aliases (by the loop's watch or by a person)."""
    from mlcycle.loop.state import LoopStore

    loop = LoopStore(store)
    runs = [r.to_dict() for r in loop.runs(model, limit=50)]
    chosen = None
    if run_id:
        chosen = next((r for r in runs if r["id"].startswith(run_id)), None)
        if chosen is None:
            raise NotFound(
                f"no loop run {run_id!r} of {model}",
                "it is not one of the model's 50 newest loop runs",
                f"pick a run on /loop?model={model}",
            )
    active = loop.active(model)
    history = Registry(store).history(model)
    return {
        "active": active.to_dict() if active else None,
        "breaker": loop.breaker(model),
        "pending": loop.pending(model),
        "runs": runs,
        "chosen": chosen,
        "events": loop.events(chosen["id"]) if chosen else [],
        "rollbacks": [e for e in reversed(history) if e.get("action") == "rollback"],
    }


def backtest_report(project: Project) -> Path | None:
    """The latest backtest report of the project (``backtest.html`` beside the spec,
    where ``mlcycle loop backtest`` writes it), if one was written."""
    path = project.base_dir / BACKTEST_FILE
    return path if path.is_file() else None


def backtest_summary(project: Project) -> dict[str, Any] | None:
    """When the backtest report was written and how big it is (``None``: no report)."""
    path = backtest_report(project)
    if path is None:
        return None
    stat = path.stat()
    return {
        "path": str(path),
        "written": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds"),
        "kib": max(1, stat.st_size // 1024),
    }
