"""Bundled examples for ``mlcycle init --example NAME``."""

from mlcycle.examples.flights import EXAMPLES

__all__ = ["EXAMPLES"]
