"""The lifecycle steps: declarations of typed inputs and outputs around one stage call.

A step names the artifacts it takes and makes, the spec sections and libraries
its cache key covers, and calls one stage function; the catalog
(:mod:`mlcycle.pipeline.catalog`) loads its inputs and saves its outputs with
lineage edges. This is the only place where stages meet.

Example:
    >>> [step.name for step in LIFECYCLE]
    ['ingest', 'validate', 'split', 'train', 'evaluate', 'gate', 'register', 'promote']
"""

from __future__ import annotations

from mlcycle.pipeline.runner import Step
from mlcycle.pipeline.steps.data import Ingest, Split, Validate
from mlcycle.pipeline.steps.evaluate import Evaluate
from mlcycle.pipeline.steps.gate import Gate
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
