"""The fitted preprocessing of a model, as data: computed once, read by serve and registry.

mlcycle's models are ``Pipeline([ColumnTransformer, estimator])`` whose
preprocessing is numeric passthrough and ``OrdinalEncoder`` / ``OneHotEncoder``
with fixed categories. Two consumers need that preprocessing as data rather
than as scikit-learn objects: the serving fast path (which rebuilds the
estimator's matrix from JSON records with a dict lookup per category) and the
ONNX export (which writes it into ``manifest.json`` so a device can do the
same). Both read it here, from :func:`describe_preprocessing`, so the reading
of ``transformers_`` and ``categories_`` exists once.

The description says what each block of output columns is (``number``,
``ordinal`` or ``onehot`` with the fitted categories in code order) and
whether a dict lookup reproduces the encoder exactly (``exact``: an unknown
value becomes NaN or an all-zero block, dense output, no infrequent
categories). The export needs the first; the fast path needs both.

Example:
    >>> pre = describe_preprocessing(pipeline)
    >>> [(b.feature, b.how) for b in pre.blocks][:2]
    [('distance', 'number'), ('carrier', 'onehot')]
    >>> pre.to_manifest()[1]["categories"][:2]
    ['AA', 'DL']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlcycle.errors import BadInput

How = Literal["number", "ordinal", "onehot"]


@dataclass(frozen=True)
class Block:
    """One block of the estimator's input columns, fed by one feature.

    ``categories`` holds the fitted categories in code order (``None`` where the
    encoder fitted a missing-value category); ``width`` is 1 except for a
    one-hot block. ``exact`` is true when a dict lookup per value gives exactly
    what the fitted transformer gives, unknown values included.
    """

    feature: str
    how: How
    categories: tuple[Any, ...] = ()
    exact: bool = True

    @property
    def width(self) -> int:
        return len(self.categories) if self.how == "onehot" else 1


@dataclass(frozen=True)
class Preprocessing:
    """The preprocessing of a fitted pipeline: its blocks in output order, and its input."""

    blocks: tuple[Block, ...]
    features_in: tuple[str, ...]
    # The ColumnTransformer's own output is sparse: no lookup reproduces it densely.
    sparse: bool = False

    @property
    def width(self) -> int:
        """Columns of the estimator's input matrix."""
        return sum(b.width for b in self.blocks)

    @property
    def exact(self) -> bool:
        """True when every block, and the whole output, is reproduced by dict lookups."""
        return not self.sparse and all(b.exact for b in self.blocks)

    def to_manifest(self) -> list[dict[str, Any]]:
        """The blocks as JSON (the ``preprocessing`` entry of an ONNX ``manifest.json``).

        Example:
            >>> describe_preprocessing(pipeline).to_manifest()[0]
            {'feature': 'distance', 'how': 'number', 'exact': True}
        """
        out: list[dict[str, Any]] = []
        for block in self.blocks:
            entry: dict[str, Any] = {"feature": block.feature, "how": block.how}
            if block.how != "number":
                entry["categories"] = list(block.categories)
            # Whether the lookup a device does reproduces scikit-learn on unknown and missing
            # values too; serving builds its fast path from the manifest only when it does.
            entry["exact"] = block.exact and not self.sparse
            out.append(entry)
        return out

    @classmethod
    def from_manifest(cls, entries: Any, features_in: Any) -> Preprocessing:
        """The description :meth:`to_manifest` wrote, read back (no scikit-learn needed).

        An entry without ``"exact"`` (a manifest written before it was recorded)
        reads as not exact: nothing in it says a lookup reproduces the encoder.
        Raises :class:`UnsupportedPreprocessing` for entries of another shape.

        Example:
            >>> pre = Preprocessing.from_manifest(manifest["preprocessing"], manifest["features"])
            >>> pre.blocks == describe_preprocessing(pipeline).blocks
            True
        """
        if not isinstance(entries, list) or not isinstance(features_in, list):
            raise UnsupportedPreprocessing("the manifest has no list of preprocessing blocks")
        blocks: list[Block] = []
        for entry in entries:
            how = entry.get("how") if isinstance(entry, dict) else None
            feature = entry.get("feature") if isinstance(entry, dict) else None
            if how not in ("number", "ordinal", "onehot") or not isinstance(feature, str):
                raise UnsupportedPreprocessing(f"the manifest has a block {entry!r}")
            categories = entry.get("categories", [])
            if (how == "number" and categories) or not isinstance(categories, list):
                raise UnsupportedPreprocessing(f"the manifest's block {feature!r} is malformed")
            blocks.append(Block(feature, how, tuple(categories), entry.get("exact") is True))
        return cls(blocks=tuple(blocks), features_in=tuple(str(f) for f in features_in))


class UnsupportedPreprocessing(BadInput):
    """The pipeline's preprocessing is not one :class:`Preprocessing` can describe."""

    def __init__(self, why: str) -> None:
        super().__init__(
            "cannot describe this model's preprocessing",
            why,
            "the fast path and the ONNX export cover numeric passthrough, OrdinalEncoder "
            "and OneHotEncoder preprocessing; other pipelines run through scikit-learn",
        )


def describe_preprocessing(model: Any) -> Preprocessing:
    """Read a fitted ``Pipeline([ColumnTransformer, estimator])`` into a :class:`Preprocessing`.

    Raises :class:`UnsupportedPreprocessing` (a :class:`BadInput`) naming the
    step it cannot describe: a pipeline of another shape, a custom or scaling
    step, column selectors it cannot resolve.

    Example:
        >>> describe_preprocessing(pipeline).width
        12
    """
    steps = getattr(model, "steps", None)
    pre = steps[0][1] if steps and len(steps) == 2 else None
    fitted = getattr(pre, "transformers_", None)
    names_in = [str(n) for n in getattr(pre, "feature_names_in_", [])]
    if fitted is None or not names_in:
        raise UnsupportedPreprocessing(
            "the model is not Pipeline([ColumnTransformer, estimator]) fitted on named columns"
        )
    blocks: list[Block] = []
    for step_name, trans, cols in fitted:
        if isinstance(trans, str) and trans == "drop":
            continue
        names = column_names(cols, names_in)
        if names is None:
            raise UnsupportedPreprocessing(f"step '{step_name}' selects columns by {cols!r}")
        blocks.extend(_step_blocks(step_name, trans, names))
    return Preprocessing(
        blocks=tuple(blocks),
        features_in=tuple(names_in),
        sparse=bool(getattr(pre, "sparse_output_", False)),
    )


def _step_blocks(step_name: str, trans: Any, names: list[str]) -> list[Block]:
    kind = type(trans).__name__
    if isinstance(trans, str) and trans == "passthrough":
        return [Block(n, "number") for n in names]
    if kind == "FunctionTransformer" and trans.func is None:
        # An identity; validate=True or an inverse would make the fast path's
        # copy of it differ in how it checks input.
        exact = trans.inverse_func is None and not trans.validate
        return [Block(n, "number", exact=exact) for n in names]
    params = trans.get_params() if hasattr(trans, "get_params") else {}
    infrequent = bool(getattr(trans, "_infrequent_enabled", False))
    if kind == "OrdinalEncoder" and is_nan(params.get("unknown_value")):
        how: How = "ordinal"
        exact = (
            params.get("handle_unknown") == "use_encoded_value"
            and is_nan(params.get("encoded_missing_value"))
            and not infrequent
        )
    elif kind == "OneHotEncoder" and params.get("drop") is None:
        how = "onehot"
        exact = (
            params.get("handle_unknown") == "ignore"
            and params.get("sparse_output", True) is False
            and not infrequent
        )
    else:
        raise UnsupportedPreprocessing(f"step '{step_name}' is a {kind}")
    categories = getattr(trans, "categories_", None)
    if categories is None or len(categories) != len(names):
        raise UnsupportedPreprocessing(f"step '{step_name}' has no categories per column")
    return [
        Block(n, how, _categories(values), exact)
        for n, values in zip(names, categories, strict=True)
    ]


def _categories(values: Any) -> tuple[Any, ...]:
    """Fitted categories as plain Python values, ``None`` for the NaN (missing) category."""
    return tuple(None if is_nan(v) else v for v in np.asarray(values, dtype=object).tolist())


def column_names(cols: Any, names_in: list[str]) -> list[str] | None:
    """The input column names a ``ColumnTransformer`` selector picks; ``None`` if unreadable.

    Example:
        >>> column_names([True, False], ["a", "b"]), column_names(slice(1, 2), ["a", "b"])
        (['a'], ['b'])
    """
    if isinstance(cols, str):
        return [cols]
    if isinstance(cols, slice):
        return names_in[cols]
    items = cols if isinstance(cols, list) else list(np.asarray(cols).tolist())
    if all(isinstance(c, str) for c in items):
        return list(items)
    if all(isinstance(c, bool) for c in items) and len(items) == len(names_in):
        return [n for n, keep in zip(names_in, items, strict=True) if keep]
    if all(isinstance(c, int) and not isinstance(c, bool) for c in items):
        return [names_in[i] for i in items]
    return None


def is_nan(value: Any) -> bool:
    """True for a float NaN (the encoders' marker for "unknown" and "missing").

    Example:
        >>> is_nan(float("nan")), is_nan(None)
        (True, False)
    """
    return isinstance(value, float) and math.isnan(value)
