"""The lifecycle steps: each reads artifacts, calls a stage, writes artifacts.

This is the only place where stages meet: a step loads its inputs from the
store, hands plain DataFrames and records to a stage function, and stores
what comes back with lineage edges to the inputs.
"""

from __future__ import annotations

from mlcycle.pipeline.runner import Step
from mlcycle.pipeline.steps.data import Ingest, Split, Validate
from mlcycle.pipeline.steps.evaluate import Evaluate, Gate
from mlcycle.pipeline.steps.registry import Promote, Register
from mlcycle.pipeline.steps.train import Train

LIFECYCLE: list[Step] = [
    Ingest(),
    Validate(),
    Split(),
    Train(),
    Evaluate(),
    Gate(),
    Register(),
    Promote(),
]
