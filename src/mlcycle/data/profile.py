"""Column profiles of dataset versions: the data stage's name for :mod:`mlcycle.profiles`.

The profile code lives in the foundation (``mlcycle/profiles.py``) because two
stages use it: the data stage profiles every dataset version here (what
``mlcycle data profile`` and the data report show, and what the pipeline copies
into a model bundle as ``profile.json``); monitoring reads that bundle copy for
the training data's ranges and category sets and profiles each window of
production rows with the same functions, so window profiles merge with each
other (docs/monitoring.md, "Profile or sample"). This module re-exports the
functions so data-stage callers keep importing them from ``mlcycle.data``.

What is exact after merging (counts, nulls, min, max, mean, m2) and what is
approximate (quantiles, histograms of different edges, ``top``, ``distinct``)
is documented in :mod:`mlcycle.profiles`.

Example:
    >>> p = compute_profile(df, schema)
    >>> p.column("dep_delay").quantiles["0.5"]
    -2.0
    >>> merged = merge_profiles(p_january, p_february)
"""

from __future__ import annotations

from mlcycle.profiles import BINS, QUANTILES, TOP, compute_profile, merge_many, merge_profiles

__all__ = ["BINS", "QUANTILES", "TOP", "compute_profile", "merge_many", "merge_profiles"]
