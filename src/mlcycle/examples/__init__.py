"""Bundled examples for ``mlcycle init --example NAME``.

- ``flights`` — will a New York flight in 2013 arrive late? (binary; retraining barely pays)
- ``chicago`` — daily L-train ridership 2001–2016 (regression; a trend, retraining pays)

Example:
    >>> sorted(EXAMPLES)
    ['chicago', 'flights']
"""

from collections.abc import Callable
from pathlib import Path

from mlcycle.examples.chicago import EXAMPLES as _CHICAGO
from mlcycle.examples.flights import EXAMPLES as _FLIGHTS

EXAMPLES: dict[str, Callable[..., list[Path]]] = {**_FLIGHTS, **_CHICAGO}

__all__ = ["EXAMPLES"]
