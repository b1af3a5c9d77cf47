"""The preprocessing description serve and the export share, and the service's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from mlcycle.errors import BadInput
from mlcycle.preprocessing import Preprocessing, UnsupportedPreprocessing, describe_preprocessing
from mlcycle.registry.export import describe_preprocessing as manifest_preprocessing
from mlcycle.serve import ServeSettings


def fitted(onehot: OneHotEncoder | None = None, numeric: object = "passthrough") -> Pipeline:
    frame = pd.DataFrame(
        {
            "distance": [100.0, 200.0, 300.0, 400.0],
            "carrier": ["AA", "DL", "AA", None],
            "origin": ["JFK", "LGA", "EWR", "JFK"],
        }
    )
    pre = ColumnTransformer(
        [
            ("num", numeric, ["distance"]),
            ("hot", onehot or OneHotEncoder(handle_unknown="ignore", sparse_output=False), [1]),
            (
                "ord",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
                np.array([False, False, True]),
            ),
        ]
    )
    model = Pipeline([("pre", pre), ("model", HistGradientBoostingClassifier(max_iter=2))])
    return model.fit(frame, [0, 1, 0, 1])


def test_blocks_in_output_order_with_their_categories() -> None:
    pre = describe_preprocessing(fitted())
    assert [(b.feature, b.how) for b in pre.blocks] == [
        ("distance", "number"),
        ("carrier", "onehot"),
        ("origin", "ordinal"),
    ]
    assert pre.blocks[1].categories == ("AA", "DL", None)  # the NaN category, as None
    assert pre.width == 1 + 3 + 1 and pre.exact
    assert pre.features_in == ("distance", "carrier", "origin")


def test_the_export_manifest_is_the_same_description() -> None:
    model = fitted()
    manifest = manifest_preprocessing(model)
    assert manifest == describe_preprocessing(model).to_manifest()
    assert manifest[0] == {"feature": "distance", "how": "number", "exact": True}
    assert manifest[2] == {
        "feature": "origin",
        "how": "ordinal",
        "categories": ["EWR", "JFK", "LGA"],
        "exact": True,
    }


@pytest.mark.parametrize(
    "onehot", [None, OneHotEncoder(handle_unknown="error", sparse_output=False)]
)
def test_the_manifest_reads_back_as_the_same_blocks(onehot: Any) -> None:
    pre = describe_preprocessing(fitted(onehot))
    back = Preprocessing.from_manifest(pre.to_manifest(), list(pre.features_in))
    assert back.blocks == pre.blocks and back.exact == pre.exact
    # A manifest written before "exact" was recorded says nothing a lookup can rely on.
    old = [{k: v for k, v in entry.items() if k != "exact"} for entry in pre.to_manifest()]
    assert not Preprocessing.from_manifest(old, list(pre.features_in)).exact
    with pytest.raises(UnsupportedPreprocessing, match="block"):
        Preprocessing.from_manifest([{"feature": "x", "how": "scaled"}], ["x"])


def test_an_encoder_a_lookup_does_not_reproduce_is_described_but_not_exact() -> None:
    pre = describe_preprocessing(fitted(OneHotEncoder(handle_unknown="error", sparse_output=False)))
    assert not pre.blocks[1].exact and not pre.exact


def test_a_scaler_cannot_be_described_and_the_export_says_so() -> None:
    model = fitted(numeric=StandardScaler())
    with pytest.raises(UnsupportedPreprocessing, match="StandardScaler"):
        describe_preprocessing(model)
    with pytest.raises(BadInput, match="export"):
        manifest_preprocessing(model)


def test_settings_travel_to_workers_through_the_environment() -> None:
    settings = ServeSettings(
        max_body_bytes=1234,
        canary=0.25,
        shadow=True,
        poll_seconds=0.5,
        bundle=Path("/b"),
        version=7,
        spec=Path("/p/mlcycle.yaml"),
        alias="champion",
        prediction_log="s3://bucket/predictions",
    )
    env = settings.to_env()
    assert all(k.startswith("MLCYCLE_SERVE_") for k in env)
    tokens = {"MLCYCLE_ADMIN_TOKEN": "adm", "MLCYCLE_PREDICT_TOKEN": "prd"}
    back = ServeSettings.from_env({**env, **tokens})
    assert back == ServeSettings(
        **{**settings.__dict__, "admin_token": "adm", "predict_token": "prd"}
    )
    assert ServeSettings.from_env({}) == ServeSettings()


def test_settings_refuse_a_non_positive_body_limit() -> None:
    with pytest.raises(BadInput, match="max_body_bytes"):
        ServeSettings(max_body_bytes=0)
