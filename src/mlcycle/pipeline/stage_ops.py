"""The stage functions the loop drives, reached through the pipeline.

The design's dependency rule is `cli`/`ui` → `loop` → `pipeline` → stages: the
loop decides and keeps its state machine, and the pipeline is where stages meet.
A loop run retrains through `Project.run`; everything else it asks of a stage —
moving aliases, reading labels, sending alerts, the gate's paired test, metrics
and drift on replayed traffic, the landed partitions behind the new-data trigger —
is named here once, so the loop never imports a stage and this list is the whole
of what it needs from them.

Example:
    >>> from mlcycle.pipeline.stage_ops import Registry
    >>> Registry(project.store).alias_version("flights", "champion")
    3
"""

from __future__ import annotations

from mlcycle.data.build import usable_partitions
from mlcycle.data.landing import list_partitions
from mlcycle.evaluate import compare_models, compute_metrics, encode_labels, scores_for
from mlcycle.evaluate.benefit import benefit_per_row
from mlcycle.monitor.alerts import deliver, sink_names, store_alerts
from mlcycle.monitor.drift import drift_report
from mlcycle.monitor.labels import read_labels
from mlcycle.monitor.svg import PALETTE, line_chart
from mlcycle.registry.models import AliasConflict, Registry

__all__ = [
    "PALETTE",
    "AliasConflict",
    "Registry",
    "benefit_per_row",
    "compare_models",
    "compute_metrics",
    "deliver",
    "drift_report",
    "encode_labels",
    "line_chart",
    "list_partitions",
    "read_labels",
    "scores_for",
    "sink_names",
    "store_alerts",
    "usable_partitions",
]
