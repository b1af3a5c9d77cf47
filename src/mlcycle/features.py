"""The feature pipeline built from the data contract: which columns a model uses, and how.

It sits below the stages because two of them build it: ``prep`` owns it (and
re-exports it as its public surface), and ``train`` puts it in front of every
estimator it fits, tunes or cross-validates. A stage never imports another,
so the builder cannot live inside either one.

The preprocessing lives inside the fitted pipeline, so it is fitted on
training rows only and travels with the model to serving. Categories come
from the contract (not from whatever a split happens to contain). Tree
families get ordinal codes (one column per feature: fast to fit and to serve,
and unseen or missing values become NaN, which the trees route natively);
other families get one-hot columns. Neither uses HistGradientBoosting's native
categorical support, whose ONNX conversion is not exact.
"""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from mlcycle.schema import Schema

# Families that cope with NaN and unscaled inputs themselves.
TREE_FAMILIES = ("hist_gradient_boosting", "random_forest", "lightgbm")


def build_preprocessor(schema: Schema, features: list[str], family: str) -> ColumnTransformer:
    """A ColumnTransformer for ``features`` suited to the estimator ``family``.

    Example:
        >>> pre = build_preprocessor(schema, model_features(schema), "hist_gradient_boosting")
        >>> pre.fit_transform(train[model_features(schema)]).shape[1]
        5
    """
    numeric = [
        c.name for c in schema.features if c.name in features and c.kind in ("numeric", "boolean")
    ]
    categorical = [c for c in schema.features if c.name in features and c.kind in ("categorical",)]
    transformers: list[tuple[str, object, list[str]]] = []
    if numeric:
        if family in TREE_FAMILIES:
            transformers.append(("num", "passthrough", numeric))
        else:
            transformers.append(
                (
                    "num",
                    Pipeline(
                        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                    ),
                    numeric,
                )
            )
    if categorical:
        categories = [list(c.categories or []) for c in categorical]
        encoder: OneHotEncoder | OrdinalEncoder
        if family in TREE_FAMILIES:
            encoder = OrdinalEncoder(
                categories=categories,
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                dtype="float64",
            )
        else:
            encoder = OneHotEncoder(
                categories=categories,
                handle_unknown="ignore",
                sparse_output=False,
                dtype="float64",
            )
        transformers.append(("cat", encoder, [c.name for c in categorical]))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def model_features(schema: Schema) -> list[str]:
    """The feature columns a model can use (datetime and free text are not encoded yet).

    Example:
        >>> model_features(schema)
        ['month', 'carrier', 'distance']
    """
    return [c.name for c in schema.features if c.kind in ("numeric", "boolean", "categorical")]
