"""Registry: the promotion gate, the registry's parts of a model bundle (meta, lineage,
card), model versions and aliases with an audit log.

Example:
    >>> from mlcycle.registry import judge
    >>> judge(evaluation, spec.gates, champion_evidence, model_tests=report).blessed
    True
"""

from mlcycle.registry.bundle import bundle_meta, lineage_record, model_card
from mlcycle.registry.gate import check_policy, judge
from mlcycle.registry.models import ModelRef, Registry, parse_model_ref

__all__ = [
    "ModelRef",
    "Registry",
    "bundle_meta",
    "check_policy",
    "judge",
    "lineage_record",
    "model_card",
    "parse_model_ref",
]
