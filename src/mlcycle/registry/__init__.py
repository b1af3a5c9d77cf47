"""Registry: the promotion gate, model bundles, versions and aliases with an audit log."""

from mlcycle.registry.gate import judge
from mlcycle.registry.models import ModelRef, Registry, parse_model_ref

__all__ = ["ModelRef", "Registry", "judge", "parse_model_ref"]
