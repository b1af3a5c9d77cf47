"""The ``evaluate.learning_curve:`` key: train and validation score by training-set size."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from mlcycle.spec.base import SpecModel


class LearningCurve(SpecModel):
    """The learning curve in the evaluation report (``evaluate.learning_curve``).

    ``sizes`` are fractions of the training split. The full size (``1.0``) is the
    trained model itself when it was fitted on exactly the training split
    (``train.final_fit: train``), so it costs no fit; every other size is a refit
    of the chosen model's pipeline, with its final parameters, on at most
    ``max_rows`` rows, scored on the validation split.

    Example:
        >>> LearningCurve(sizes=[0.25, 0.5, 1.0], max_rows=50_000).sizes
        [0.25, 0.5, 1.0]
    """

    enabled: bool = True
    sizes: list[float] = Field(
        default_factory=lambda: [0.1, 0.3, 1.0],
        min_length=2,
        max_length=12,
        description="fractions of the training split (0 < size ≤ 1), one refit each "
        "(1.0 reuses the trained model when it was fitted on the training split alone)",
    )
    max_rows: int = Field(
        default=20_000,
        ge=100,
        description="the most rows a refit uses (larger sizes are cut to this); bounds the cost",
    )

    @field_validator("sizes")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        bad = [s for s in value if not 0 < s <= 1]
        if bad:
            raise ValueError(
                f"sizes are fractions of the training split, 0 < size ≤ 1; got {bad} "
                "(e.g. sizes: [0.1, 0.3, 1.0])"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"sizes {value} repeat a value; list each fraction once")
        return sorted(value)

    @model_serializer(mode="wrap")
    def _what_changes_the_output(self, handler: SerializerFunctionWrapHandler) -> Any:
        # The spec's dump keys the pipeline cache: while the curve is off, its sizes and
        # row cap change nothing, so they must not invalidate the evaluate step.
        return handler(self) if self.enabled else {"enabled": False}
