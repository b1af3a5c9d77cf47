"""ModelRuntime: loading, input checks and coercion, predictions against the pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

# The bundle builder is shared with the integration tests (no conftest by design).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))

from serve_fixtures import FEATURES, build_bundle, flights_frame, good_record

from mlcycle.errors import BadInput, NotFound
from mlcycle.serve.model.runtime import SINGLE_THREAD_ROWS, InputError, ModelRuntime


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "binary": build_bundle(root / "binary"),
        "unknown": build_bundle(root / "unknown", unseen="unknown"),
        "multiclass": build_bundle(root / "multiclass", task="multiclass"),
        "regression": build_bundle(root / "regression", task="regression"),
    }


@pytest.fixture(scope="module")
def rt(bundles: dict[str, Path]) -> ModelRuntime:
    return ModelRuntime.load(bundles["binary"], version=7)


def fields(exc: pytest.ExceptionInfo[InputError]) -> list[Any]:
    return [d["field"] for d in exc.value.details]


# --- loading ------------------------------------------------------------------------


def test_load_reads_bundle(rt: ModelRuntime) -> None:
    assert rt.version == 7
    assert rt.meta.name == "flights"
    assert rt.features == FEATURES
    assert rt.classes == [False, True]
    assert rt.positive_label is True
    assert [c.name for c in rt.input_schema.columns] == FEATURES
    assert "flight_id" in rt.schema.names()


def test_load_missing_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="not found"):
        ModelRuntime.load(tmp_path / "nope")


def test_load_file_instead_of_folder(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"x")
    with pytest.raises(BadInput, match="not a folder"):
        ModelRuntime.load(tmp_path / "model.joblib")


@pytest.mark.parametrize("missing", ["model.joblib", "meta.json", "schema.json"])
def test_load_missing_file_is_not_found(
    bundles: dict[str, Path], tmp_path: Path, missing: str
) -> None:
    copy = _copy_bundle(bundles["binary"], tmp_path)
    (copy / missing).unlink()
    with pytest.raises(NotFound, match=missing):
        ModelRuntime.load(copy)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("meta.json", b"{not json", "not a valid meta.json"),
        ("meta.json", b'{"name": "x"}', "not a valid meta.json"),
        ("schema.json", b'{"columns": [{"name": "a", "kind": "weird"}]}', "schema.json"),
        ("model.joblib", b"this is not a pickle", "cannot load"),
    ],
)
def test_load_unreadable_file_is_bad_input(
    bundles: dict[str, Path], tmp_path: Path, name: str, content: bytes, match: str
) -> None:
    copy = _copy_bundle(bundles["binary"], tmp_path)
    (copy / name).write_bytes(content)
    with pytest.raises(BadInput, match=match) as exc:
        ModelRuntime.load(copy)
    assert not isinstance(exc.value, NotFound)


def test_load_refuses_feature_without_schema(bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = _copy_bundle(bundles["binary"], tmp_path)
    schema = json.loads((copy / "schema.json").read_text())
    schema["columns"] = [c for c in schema["columns"] if c["name"] != "origin"]
    (copy / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(BadInput, match="origin"):
        ModelRuntime.load(copy)


def test_load_refuses_classes_that_do_not_match(bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = _copy_bundle(bundles["binary"], tmp_path)
    meta = json.loads((copy / "meta.json").read_text())
    meta["classes"] = ["no", "yes"]
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BadInput, match="classes"):
        ModelRuntime.load(copy)


# --- predictions --------------------------------------------------------------------


def test_binary_probabilities_equal_pipeline(rt: ModelRuntime) -> None:
    frame = flights_frame(400, seed=3)
    out = rt.predict(rt.validate_frame(frame))
    expected = rt.model.predict_proba(frame[FEATURES])
    np.testing.assert_allclose(np.array(out["probabilities"]), expected, rtol=0, atol=1e-12)
    assert out["predictions"] == rt.model.predict(frame[FEATURES]).tolist()
    assert out["classes"] == [False, True]
    assert all(type(p) is bool for p in out["predictions"])


def test_records_give_same_probabilities_as_frame(rt: ModelRuntime) -> None:
    records = [good_record(i) for i in range(25)]
    from_records = rt.predict(rt.validate_records(records))
    expected = rt.model.predict_proba(
        pd.DataFrame(records)[FEATURES].astype({"carrier": "str", "origin": "str"})
    )
    np.testing.assert_allclose(from_records["probabilities"], expected, rtol=0, atol=1e-12)


def test_single_thread_path_matches_threaded_path(rt: ModelRuntime) -> None:
    frame = rt.validate_frame(flights_frame(SINGLE_THREAD_ROWS + 10, seed=4))
    _, many = rt.predict_arrays(frame)
    _, few = rt.predict_arrays(frame.iloc[:5].reset_index(drop=True))
    assert many is not None and few is not None
    np.testing.assert_allclose(few, many[:5], rtol=0, atol=1e-12)


def test_multiclass_probabilities_follow_meta_class_order(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    copy = _copy_bundle(bundles["multiclass"], tmp_path)
    meta = json.loads((copy / "meta.json").read_text())
    meta["classes"] = list(reversed(meta["classes"]))
    (copy / "meta.json").write_text(json.dumps(meta))
    rt = ModelRuntime.load(copy)
    frame = flights_frame(200, seed=5)
    out = rt.predict(rt.validate_frame(frame))
    fitted = rt.model.classes_.tolist()
    order = [fitted.index(c) for c in meta["classes"]]
    expected = rt.model.predict_proba(frame[FEATURES])[:, order]
    assert out["classes"] == meta["classes"]
    np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=1e-12)
    assert out["predictions"] == rt.model.predict(frame[FEATURES]).tolist()
    assert rt.positive_index is None


def test_regression_predictions_equal_pipeline(bundles: dict[str, Path]) -> None:
    rt = ModelRuntime.load(bundles["regression"])
    frame = flights_frame(200, seed=6)
    out = rt.predict(rt.validate_frame(frame))
    assert set(out) == {"predictions"}
    np.testing.assert_allclose(out["predictions"], rt.model.predict(frame[FEATURES]), atol=1e-12)
    assert all(type(p) is float for p in out["predictions"])


def test_a_compiled_plan_that_disagrees_falls_back_to_the_pipeline(
    bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plan of the right width whose one-hot codes are swapped builds a matrix of
    # the right shape and wrong values: the check at load must compare values, not
    # shapes, and keep the scikit-learn pipeline.
    from mlcycle.serve.model import fastpath
    from mlcycle.serve.model import runtime as runtime_module

    def swapped_plan(model: Any, schema: Any, unseen: str, *more: Any) -> fastpath.Plan | None:
        plan = fastpath.compile_plan(model, schema, unseen, *more)
        assert plan is not None
        onehot = next(o for o in plan.outputs if o.how == "onehot" and len(o.codes) > 1)
        names = list(onehot.codes)
        onehot.codes = dict(zip(names, reversed(list(onehot.codes.values())), strict=True))
        return plan

    rt = ModelRuntime.load(bundles["binary"])
    assert rt.sklearn_engine == "sklearn-compiled"  # the honest plan passes the check
    sample = flights_frame(300, seed=11)
    monkeypatch.setattr(runtime_module, "compile_plan", swapped_plan)
    assert rt.compile(sample, onnx=False) == "sklearn-pipeline"
    assert rt.plan is None
    out = rt.predict(rt.validate_frame(sample))
    expected = rt.model.predict_proba(sample[FEATURES])
    np.testing.assert_allclose(np.array(out["probabilities"]), expected, rtol=0, atol=1e-12)


# --- coercion -----------------------------------------------------------------------


def test_output_frame_has_features_in_order_with_training_dtypes(rt: ModelRuntime) -> None:
    record = {"weekend": True, "extra": "ignored", **good_record(2)}
    record["distance"] = 500  # an int for a numeric column
    frame = rt.validate_records([record])
    assert list(frame.columns) == FEATURES
    assert frame["distance"].dtype == np.float64
    assert frame["dep_delay"].dtype == np.float64
    assert frame["carrier"].dtype == "str"
    assert frame["weekend"].dtype == bool
    assert frame.loc[0, "distance"] == 500.0


def test_null_and_absent_keys_become_nan_in_nullable_columns(rt: ModelRuntime) -> None:
    full = good_record(1)
    partial = {k: v for k, v in good_record(2).items() if k not in ("dep_delay", "origin")}
    frame = rt.validate_records([{**full, "dep_delay": None, "origin": None}, partial])
    assert frame["dep_delay"].isna().all()
    assert frame["origin"].isna().all()
    assert frame["origin"].dtype == "str"  # an all-null column keeps its text dtype
    out = rt.predict(frame)
    assert len(out["predictions"]) == 2


def test_int_coded_category_becomes_text(rt: ModelRuntime) -> None:
    frame = rt.validate_columns(
        {
            "dep_delay": [1.0],
            "distance": [100],
            "carrier": ["AA"],
            "origin": [None],
            "weekend": [False],
        }
    )
    assert frame.loc[0, "carrier"] == "AA"
    with pytest.raises(InputError) as exc:
        rt.validate_columns(
            {
                "dep_delay": [1.0],
                "distance": [100],
                "carrier": [7],
                "origin": [None],
                "weekend": [False],
            }
        )
    assert fields(exc) == ["carrier"]  # becomes "7": a string, but not a known carrier
    assert "unseen" in exc.value.details[0]["error"]


def test_text_parsing_only_when_asked(rt: ModelRuntime) -> None:
    text = pd.DataFrame(
        {
            "dep_delay": ["1.5"],
            "distance": [" 300 "],
            "carrier": ["AA"],
            "origin": [None],
            "weekend": ["true"],
        },
        dtype="str",
    )
    frame = rt.validate_frame(text, from_text=True)
    assert frame.loc[0, "dep_delay"] == 1.5
    assert frame.loc[0, "distance"] == 300.0
    assert bool(frame.loc[0, "weekend"]) is True
    with pytest.raises(InputError) as exc:
        rt.validate_frame(text)
    assert set(fields(exc)) == {"dep_delay", "distance", "weekend"}


def test_frame_with_foreign_index_is_realigned(rt: ModelRuntime) -> None:
    frame = flights_frame(50, seed=8)
    shuffled = frame.sample(frac=1.0, random_state=0)
    shuffled.index = shuffled.index + 1000
    out = rt.predict(rt.validate_frame(shuffled))
    expected = rt.model.predict_proba(shuffled[FEATURES])
    np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=1e-12)


def test_categorical_dtype_and_nullable_ints_are_accepted(rt: ModelRuntime) -> None:
    frame = flights_frame(30, seed=9)
    typed = frame.astype({"carrier": "category", "distance": "Int64"})
    out = rt.predict(rt.validate_frame(typed))
    np.testing.assert_allclose(
        out["probabilities"], rt.model.predict_proba(frame[FEATURES]), rtol=0, atol=1e-12
    )


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"dep_delay": "abc"}, "dep_delay", "finite number"),
        ({"dep_delay": "1.5"}, "dep_delay", "finite number"),
        ({"dep_delay": True}, "dep_delay", "finite number"),
        ({"dep_delay": [1]}, "dep_delay", "finite number"),
        ({"dep_delay": {"a": 1}}, "dep_delay", "finite number"),
        ({"distance": 10**400}, "distance", "finite number"),
        ({"distance": None}, "distance", "never be null"),
        ({"carrier": None}, "carrier", "never be null"),
        ({"carrier": "ZZ"}, "carrier", "unseen"),
        ({"carrier": 1.5}, "carrier", "a string"),
        ({"carrier": True}, "carrier", "a string"),
        ({"carrier": ["AA"]}, "carrier", "a string"),
        ({"origin": "XXX"}, "origin", "unseen"),
        ({"weekend": 2}, "weekend", "true or false"),
        ({"weekend": "yes"}, "weekend", "true or false"),
        ({"weekend": None}, "weekend", "never be null"),
    ],
)
def test_bad_value_names_the_field(
    rt: ModelRuntime, change: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InputError) as exc:
        rt.validate_records([good_record(0), {**good_record(1), **change}])
    assert fields(exc) == [field]
    assert words in exc.value.details[0]["error"]
    assert "row 1" in exc.value.details[0]["error"]
    body = exc.value.to_dict()
    assert set(body) == {"error", "why", "fix", "details"}


def test_every_bad_field_is_reported_once(rt: ModelRuntime) -> None:
    with pytest.raises(InputError) as exc:
        rt.validate_records(
            [{"dep_delay": "x", "distance": None, "carrier": "ZZ", "origin": 3.5, "weekend": 4}]
        )
    assert fields(exc) == FEATURES


def test_missing_column_is_named(rt: ModelRuntime) -> None:
    record = {k: v for k, v in good_record(0).items() if k != "carrier"}
    with pytest.raises(InputError) as exc:
        rt.validate_records([record, record])
    assert fields(exc) == ["carrier"]
    assert "missing" in exc.value.what


@pytest.mark.parametrize("column", ["dep_delay", "origin"])
def test_a_missing_nullable_column_is_refused_not_read_as_all_null(
    rt: ModelRuntime, column: str
) -> None:
    # dep_delay and origin may hold nulls, but a column absent altogether is a
    # client bug (a renamed field), not a batch of unknowns: refuse it on every path.
    records = [{k: v for k, v in good_record(i).items() if k != column} for i in range(3)]
    assert rt.encode_records(records) is None  # the fast path leaves it to the check
    with pytest.raises(InputError) as exc:
        rt.validate_records(records)
    assert fields(exc) == [column]
    frame = flights_frame(20, seed=2).drop(columns=[column])
    with pytest.raises(InputError) as exc:
        rt.validate_frame(frame)
    assert fields(exc) == [column]
    with pytest.raises(InputError) as exc:
        rt.check_rows(frame)
    assert fields(exc) == [column]
    columns = {k: list(v) for k, v in frame[[f for f in FEATURES if f != column]].items()}
    with pytest.raises(InputError) as exc:
        rt.validate_columns(columns)
    assert fields(exc) == [column]


@pytest.mark.parametrize("rows", [[], pd.DataFrame(columns=FEATURES)])
def test_empty_batch_is_refused(rt: ModelRuntime, rows: Any) -> None:
    with pytest.raises(InputError, match="empty batch"):
        if isinstance(rows, pd.DataFrame):
            rt.validate_frame(rows)
        else:
            rt.validate_records(rows)


def test_record_that_is_not_an_object(rt: ModelRuntime) -> None:
    with pytest.raises(InputError, match="not a JSON object"):
        rt.validate_records([good_record(0), 5])  # type: ignore[list-item]


def test_uneven_columns_are_refused(rt: ModelRuntime) -> None:
    columns: dict[str, list[Any]] = {k: [v] for k, v in good_record(0).items()}
    columns["distance"] = [1, 2]
    with pytest.raises(InputError, match="different lengths"):
        rt.validate_columns(columns)


def test_infinity_in_a_frame_is_refused(rt: ModelRuntime) -> None:
    frame = flights_frame(5)
    frame.loc[2, "dep_delay"] = np.inf
    with pytest.raises(InputError) as exc:
        rt.validate_frame(frame)
    assert fields(exc) == ["dep_delay"]


def test_duplicate_columns_are_refused(rt: ModelRuntime) -> None:
    frame = flights_frame(5)[FEATURES]
    doubled = pd.concat([frame, frame[["carrier"]]], axis=1)
    with pytest.raises(InputError, match="duplicate"):
        rt.validate_frame(doubled)


def test_unseen_category_passes_under_unknown_policy(bundles: dict[str, Path]) -> None:
    rt = ModelRuntime.load(bundles["unknown"])
    frame = rt.validate_records([{**good_record(0), "carrier": "ZZ", "origin": "XXX"}])
    assert frame.loc[0, "carrier"] == "ZZ"
    out = rt.predict(frame)
    expected = rt.model.predict_proba(frame)
    np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=1e-12)
    # Null where never null is still an error under the lenient policy.
    with pytest.raises(InputError):
        rt.validate_records([{**good_record(0), "carrier": None}])


def test_check_rows_splits_good_and_bad(rt: ModelRuntime) -> None:
    frame = flights_frame(20, seed=2)
    frame.loc[3, "carrier"] = "ZZ"
    frame.loc[7, "distance"] = np.nan
    frame["weekend"] = frame["weekend"].astype(object)  # as Parquet gives a bool with nulls
    frame.loc[7, "weekend"] = None
    check = rt.check_rows(frame)
    assert np.flatnonzero(check.rejected).tolist() == [3, 7]
    assert check.reasons[0] == "carrier: unseen category 'ZZ'"
    assert check.reasons[1].startswith("distance: null")
    assert "weekend" in check.reasons[1]
    assert len(check.frame) == 18
    kept = frame.drop(index=[3, 7]).reset_index(drop=True)
    _, proba = rt.predict_arrays(check.frame)
    np.testing.assert_allclose(
        proba, rt.model.predict_proba(kept[FEATURES].astype({"weekend": bool})), atol=1e-12
    )


def _copy_bundle(source: Path, target_root: Path) -> Path:
    target = target_root / "bundle"
    target.mkdir()
    for item in source.iterdir():
        (target / item.name).write_bytes(item.read_bytes())
    return target


# --- coercion of kinds the flights bundle lacks ----------------------------------------


def _col(kind: str, nullable: bool = True) -> Any:
    from mlcycle.schema import ColumnSchema

    return ColumnSchema(name="x", kind=kind, nullable=nullable)  # type: ignore[arg-type]


def test_datetime_coercion() -> None:
    from mlcycle.serve.model.coerce import coerce_column as _coerce

    values = [
        "2024-03-01T10:00:00",
        "2024-03-01T12:00:00+02:00",
        None,
        "not a date",
        "",
        5,
        "2024-13-45",
        "99999-01-01",
    ]
    out, bad, bad_values = _coerce(values, _col("datetime"), False)
    assert out.dtype.kind == "M"
    assert out[0] == pd.Timestamp("2024-03-01T10:00:00")
    assert out[1] == pd.Timestamp("2024-03-01T10:00:00")  # converted to UTC, offset dropped
    assert pd.isna(out[2])
    assert np.flatnonzero(bad).tolist() == [3, 4, 5, 6, 7]
    assert bad_values == ["not a date", "", 5, "2024-13-45", "99999-01-01"]
    typed = pd.Series(pd.to_datetime(["2024-01-01T00:00:00Z"]))
    out, bad, _ = _coerce(typed, _col("datetime"), False)
    assert not bad.any() and out.dt.tz is None


def test_decimal_and_numpy_scalars_are_numbers() -> None:
    import decimal

    from mlcycle.serve.model.coerce import coerce_column as _coerce

    values = [decimal.Decimal("1.25"), np.int64(3), np.float32(0.5), np.bool_(True), 1 + 2j]
    out, bad, _ = _coerce(values, _col("numeric"), False)
    assert out[:3].tolist() == [1.25, 3.0, 0.5]
    assert bad.tolist() == [False, False, False, True, True]
    complex_col = pd.Series([1 + 1j, 2 + 0j])
    _, bad, _ = _coerce(complex_col, _col("numeric"), False)
    assert bad.all()


def test_boolean_coercion() -> None:
    from mlcycle.serve.model.coerce import coerce_column as _coerce

    out, bad, _ = _coerce([True, False, 1, 0, 0.0], _col("boolean"), False)
    assert out.dtype == bool and out.tolist() == [True, False, True, False, False]
    assert not bad.any()
    out, bad, _ = _coerce([True, None, "yes", "N"], _col("boolean"), True)
    assert out.dtype == np.float64  # a null forces 0/1/NaN
    assert np.isnan(out[1]) and out[2] == 1.0 and out[3] == 0.0
    _, bad, bad_values = _coerce(["yes", 2, 0.5], _col("boolean"), False)
    assert bad.all() and bad_values == ["yes", 2, 0.5]


# --- micro-batching (the REST app's use of the runtime) ----------------------------------


def test_micro_batcher_splits_results_per_request(rt: ModelRuntime) -> None:
    import asyncio

    from mlcycle.serve.http.batching import MicroBatcher

    frames = [rt.validate_frame(flights_frame(1 + i % 4, seed=i)) for i in range(30)]
    batcher = MicroBatcher(rt, max_rows=16)

    async def run_all() -> list[Any]:
        return await asyncio.gather(*(batcher.predict(f) for f in frames))

    results = asyncio.run(run_all())
    for frame, (labels, proba) in zip(frames, results, strict=True):
        expected_labels, expected = rt.predict_arrays(frame)
        assert labels == expected_labels
        np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-12)
    # A second event loop (a new test client, say) starts with a clean queue.
    again = asyncio.run(run_all())
    assert [r[0] for r in again] == [r[0] for r in results]


def test_concat_of_bool_and_nullable_bool_columns() -> None:
    from mlcycle.serve.http.batching import concat as _concat

    a = pd.DataFrame({"flag": np.array([True, False]), "x": [1.0, 2.0]})
    b = pd.DataFrame({"flag": np.array([1.0, np.nan]), "x": [3.0, 4.0]})
    both = _concat([a, b])
    assert both["flag"].dtype == np.float64
    assert both["flag"].tolist()[:3] == [1.0, 0.0, 1.0]
    assert np.isnan(both["flag"].iloc[3])
