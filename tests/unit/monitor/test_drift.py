"""drift_report and the default test choice, on generated data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlcycle.artifacts import DriftReport
from mlcycle.errors import BadInput
from mlcycle.monitor import TESTS, choose_test, drift_report
from mlcycle.monitor import stattests as st
from mlcycle.schema import ColumnSchema, Schema


def frame(n: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    """Four features; ``shift`` moves each one's distribution."""
    rng = np.random.default_rng(seed)
    colours = np.array(["red", "green", "blue", "black"])
    weights = np.array([0.4, 0.3, 0.2, 0.1]) if shift == 0 else np.array([0.15, 0.25, 0.3, 0.3])
    return pd.DataFrame(
        {
            "amount": rng.normal(100.0 + 15.0 * shift, 10.0, n),
            "colour": pd.Series(colours[rng.choice(4, size=n, p=weights)], dtype="str"),
            "member": rng.random(n) < (0.3 + 0.25 * shift),
            "stars": rng.integers(1, 6, n),  # 5 distinct numbers: tested as categorical
        }
    )


def by_name(report: DriftReport) -> dict[str, tuple[str, str, bool]]:
    return {f.feature: (f.kind, f.test, f.drift) for f in report.features}


# --- choose_test ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "n_ref", "n_unique", "expected"),
    [
        ("numeric", 1000, 200, ("ks", 0.05)),
        ("numeric", 1001, 200, ("wasserstein", 0.1)),
        ("numeric", 160_000, 6, ("wasserstein", 0.1)),
        ("numeric", 160_000, 5, ("js", 0.1)),
        ("numeric", 500, 5, ("chi2", 0.05)),
        ("numeric", 500, 2, ("z", 0.05)),
        ("categorical", 500, 12, ("chi2", 0.05)),
        ("categorical", 500, 2, ("z", 0.05)),
        ("categorical", 500, 1, ("z", 0.05)),
        ("categorical", 1001, 2, ("js", 0.1)),
        ("categorical", 50_000, 300, ("js", 0.1)),
    ],
)
def test_choose_test_follows_evidently_defaults(
    kind: str, n_ref: int, n_unique: int, expected: tuple[str, float]
) -> None:
    assert choose_test(kind, n_ref, n_unique) == expected


def test_choose_test_unknown_kind() -> None:
    with pytest.raises(BadInput, match="unknown column kind 'text'"):
        choose_test("text", 10, 3)


def test_registry_names() -> None:
    assert list(TESTS) == ["ks", "chi2", "z", "psi", "wasserstein", "js", "hellinger"]
    assert [t.name for t in TESTS.values() if t.uses_p_value] == ["ks", "chi2", "z"]


# --- drift_report: both regimes ------------------------------------------------------


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "tests"),
    [
        (600, 700, {"amount": "ks", "colour": "chi2", "member": "z", "stars": "chi2"}),
        (20_000, 25_000, {"amount": "wasserstein", "colour": "js", "member": "js", "stars": "js"}),
    ],
)
def test_shifted_features_drift_and_unchanged_do_not(
    n_ref: int, n_cur: int, tests: dict[str, str]
) -> None:
    reference = frame(n_ref, seed=1)
    same = drift_report(reference, frame(n_cur, seed=2), test="evidently")
    moved = drift_report(reference, frame(n_cur, seed=3, shift=1.0), test="evidently")

    assert {f.feature: f.test for f in same.features} == tests
    assert same.drifted == []
    # "stars" keeps its distribution in both current samples.
    assert moved.drifted == ["amount", "colour", "member"]
    assert (moved.reference_rows, moved.current_rows) == (n_ref, n_cur)
    assert by_name(moved)["stars"] == ("categorical", tests["stars"], False)
    assert by_name(moved)["amount"][0] == "numeric"


def test_report_statistics_match_the_stattests() -> None:
    reference, current = frame(3_000, seed=4), frame(2_500, seed=5, shift=0.3)
    report = drift_report(reference, current, test="evidently")
    feature = {f.feature: f for f in report.features}
    assert feature["amount"].statistic == pytest.approx(
        st.wasserstein_norm(reference["amount"].to_numpy(), current["amount"].to_numpy())[0],
        rel=1e-12,
    )
    assert feature["colour"].statistic == pytest.approx(
        st.jensenshannon(
            reference["colour"].to_numpy(), current["colour"].to_numpy(), "categorical"
        )[0],
        rel=1e-12,
    )
    assert feature["amount"].threshold == 0.1 and feature["amount"].p_value is None


def test_explicit_test_and_threshold() -> None:
    reference, current = frame(3_000, seed=6), frame(3_000, seed=7, shift=0.3)
    report = drift_report(reference, current, ["amount", "colour"], test="psi", threshold=0.05)
    amount, colour = report.features
    assert (amount.test, amount.kind, amount.threshold) == ("psi", "numeric", 0.05)
    assert amount.statistic == pytest.approx(
        st.psi(reference["amount"].to_numpy(), current["amount"].to_numpy(), "numeric")[0]
    )
    assert colour.drift == (colour.statistic >= 0.05)

    ks = drift_report(reference, current, ["amount"], test="ks").features[0]
    assert ks.p_value is not None and ks.drift == (ks.p_value < 0.05)


def test_low_cardinality_counts_values_over_both_samples() -> None:
    # 3 values in the reference, 3 more in the current: 6 in all, so numeric (as Evidently).
    reference = pd.DataFrame({"x": np.tile([1.0, 2.0, 3.0], 100)})
    current = pd.DataFrame({"x": np.tile([4.0, 5.0, 6.0], 100)})
    feature = drift_report(reference, current, test="evidently").features[0]
    assert (feature.kind, feature.test, feature.drift) == ("numeric", "ks", True)
    few = drift_report(reference, reference.iloc[::-1], test="evidently").features[0]
    assert (few.kind, few.test, few.drift) == ("categorical", "chi2", False)


def test_nan_and_inf_are_dropped() -> None:
    rng = np.random.default_rng(8)
    clean_ref, clean_cur = rng.normal(size=400), rng.normal(size=300)
    reference = pd.DataFrame({"x": np.concatenate([clean_ref, [np.nan, np.inf]])})
    current = pd.DataFrame({"x": np.concatenate([clean_cur, [-np.inf, np.nan, np.nan]])})
    feature = drift_report(reference, current, test="evidently").features[0]
    assert (feature.statistic, feature.p_value) == st.ks(clean_ref, clean_cur)


def test_entirely_null_column_is_skipped() -> None:
    reference = frame(300, seed=9)
    current = frame(300, seed=10).assign(colour=pd.Series([None] * 300, dtype="str"))
    feature = by_name(drift_report(reference, current, test="evidently"))["colour"]
    assert feature == ("categorical", "skipped", False)


def test_schema_gives_columns_and_kinds() -> None:
    reference, current = frame(800, seed=11), frame(900, seed=12)
    reference["code"] = np.arange(800) % 40  # integer codes the schema calls categorical
    current["code"] = np.arange(900) % 40
    schema = Schema(
        columns=[
            ColumnSchema(name="amount", kind="numeric"),
            ColumnSchema(name="code", kind="categorical"),
            ColumnSchema(name="member", kind="boolean", role="target"),
        ]
    )
    report = drift_report(reference, current, schema=schema, test="evidently")
    assert by_name(report) == {
        "amount": ("numeric", "ks", False),
        "code": ("categorical", "chi2", False),
    }


def test_categorical_dtype_categories_are_aligned() -> None:
    reference = pd.DataFrame({"c": pd.Categorical(["a", "b"] * 300, categories=["a", "b"])})
    current = pd.DataFrame({"c": pd.Categorical(["b", "a"] * 300, categories=["b", "a", "z"])})
    feature = drift_report(reference, current, test="evidently").features[0]
    assert (feature.test, feature.statistic, feature.drift) == ("z", 0.0, False)


def test_boolean_and_zero_one_numbers_compare_as_one_kind() -> None:
    reference = pd.DataFrame({"flag": np.array([True, False] * 400)})
    current = pd.DataFrame({"flag": np.array([1, 0] * 400)})
    feature = drift_report(reference, current, test="evidently").features[0]
    assert (feature.kind, feature.test, feature.statistic) == ("categorical", "z", 0.0)


# --- bad input -----------------------------------------------------------------------


def test_missing_columns_name_the_column_and_side() -> None:
    reference, current = frame(50, seed=13), frame(50, seed=14)
    with pytest.raises(BadInput, match="'price' missing from the reference data"):
        drift_report(reference, current, ["amount", "price"])
    with pytest.raises(BadInput, match="'colour' missing from the current data"):
        drift_report(reference, current.drop(columns="colour"), ["colour"])
    schema = Schema(columns=[ColumnSchema(name="weight", kind="numeric")])
    with pytest.raises(BadInput, match="'weight' missing from the reference") as info:
        drift_report(reference, current, schema=schema)
    assert "schema" in info.value.fix


def test_retyped_column() -> None:
    reference = frame(50, seed=15)
    current = frame(50, seed=16).assign(amount=lambda d: d["amount"].astype(str))
    with pytest.raises(
        BadInput, match="column 'amount' was retyped: numeric in the reference, text in the current"
    ):
        drift_report(reference, current)


def test_empty_frames() -> None:
    reference = frame(50, seed=17)
    with pytest.raises(BadInput, match="the current data has no rows"):
        drift_report(reference, reference.iloc[:0])
    with pytest.raises(BadInput, match="the reference data has no rows"):
        drift_report(reference.iloc[:0], reference)


def test_unknown_test_lists_the_allowed_ones() -> None:
    reference = frame(50, seed=18)
    with pytest.raises(BadInput, match="unknown drift test 'kl'") as info:
        drift_report(reference, reference, test="kl")
    assert info.value.fix == (
        "use one of: auto, evidently, ks, chi2, z, psi, wasserstein, js, hellinger"
    )


def test_numeric_test_on_text_names_the_column() -> None:
    reference = frame(50, seed=19)
    with pytest.raises(BadInput, match="test 'wasserstein' needs numbers but column 'colour'"):
        drift_report(reference, reference, ["colour"], test="wasserstein")


def test_z_on_many_categories_names_the_column() -> None:
    reference = frame(50, seed=20)
    with pytest.raises(BadInput, match="column 'colour': the Z-test needs a binary column"):
        drift_report(reference, reference, ["colour"], test="z")


def test_schema_numeric_but_text_data() -> None:
    reference = frame(50, seed=21)
    schema = Schema(columns=[ColumnSchema(name="colour", kind="numeric")])
    with pytest.raises(BadInput, match="column 'colour' holds text but the schema says"):
        drift_report(reference, reference, schema=schema)


def test_datetime_columns() -> None:
    reference = frame(50, seed=22).assign(when=pd.Timestamp("2024-01-01"))
    assert "when" not in {f.feature for f in drift_report(reference, reference).features}
    with pytest.raises(BadInput, match="column 'when' holds dates/times"):
        drift_report(reference, reference, ["when"])


def test_bad_threshold_and_no_columns() -> None:
    reference = frame(50, seed=23)
    with pytest.raises(BadInput, match="threshold -1"):
        drift_report(reference, reference, threshold=-1)
    with pytest.raises(BadInput, match="no columns to test"):
        drift_report(reference[["amount"]], reference[["colour"]])


# --- packaging -----------------------------------------------------------------------


def test_monitor_imports_no_stage_or_training_package() -> None:
    code = (
        "import sys, mlcycle.monitor\n"
        "bad = ('mlcycle.data', 'mlcycle.prep', 'mlcycle.train', 'mlcycle.evaluate',\n"
        "       'mlcycle.registry', 'mlcycle.serve', 'mlcycle.pipeline', 'mlcycle.cli',\n"
        "       'mlcycle.store', 'sklearn', 'optuna', 'lightgbm', 'evidently')\n"
        "print(sorted(m for m in sys.modules if m.startswith(bad)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_duplicate_column_names() -> None:
    reference = frame(50, seed=24)
    doubled = pd.concat([reference[["amount"]], reference[["amount"]]], axis=1)
    with pytest.raises(BadInput, match="column 'amount' appears more than once in the current"):
        drift_report(reference, doubled, ["amount"])
