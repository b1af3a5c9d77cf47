"""Preparation: split a dataset version into train / valid / test without leakage."""

from mlcycle.prep.split import split_frame

__all__ = ["split_frame"]
