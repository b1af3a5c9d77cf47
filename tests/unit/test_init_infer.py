"""What `mlcycle init --data` infers from a frame: task, labels, special columns, split,
metric, columns to look at, leakage suspects; and that the spec it writes loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcycle.data.scaffold import propose, read_sample
from mlcycle.data.scaffold_proposal import Proposal
from mlcycle.data.scaffold_render import render_spec
from mlcycle.errors import BadInput
from mlcycle.spec import Source, Spec


def _base(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "color": rng.choice(["red", "green", "blue"], n),
        }
    )


def _notes(p: Proposal) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for note in p.notes:
        found.setdefault(note.column, set()).add(note.issue)
    return found


def _spec(p: Proposal) -> Spec:
    text = render_spec(p, project="t", source=Source(path="d.csv"), origin="a test")
    return Spec.from_dict(yaml.safe_load(text))


def test_binary_string_labels_positive_is_the_minority() -> None:
    df = _base()
    rng = np.random.default_rng(1)
    df["churned"] = np.where(rng.random(len(df)) < 0.3, "yes", "no")
    p = propose(df, "churned")
    assert (p.task, p.positive_label, p.metric, p.split) == (
        "binary",
        "yes",
        "roc_auc",
        "stratified",
    )
    assert "minority" in p.positive_why
    spec = _spec(p)
    # Quoted in the YAML: an unquoted yes would load as the boolean true.
    assert spec.problem.positive_label == "yes"
    # The minority is the positive even when it is the 'false-looking' value.
    df["churned"] = np.where(rng.random(len(df)) < 0.2, "no", "yes")
    assert propose(df, "churned").positive_label == "no"


def test_imbalanced_binary_gets_pr_auc_and_booleans_stay_booleans() -> None:
    df = _base()
    df["fraud"] = np.random.default_rng(2).random(len(df)) < 0.04
    p = propose(df, "fraud")
    assert (p.task, p.positive_label, p.metric) == ("binary", True, "pr_auc")
    assert "rare" in p.metric_why
    assert _spec(p).problem.positive_label is True


def test_multiclass_from_text_and_from_small_integer_codes() -> None:
    df = _base()
    df["species"] = np.random.default_rng(3).choice(["a", "b", "c"], len(df))
    p = propose(df, "species")
    assert (p.task, p.positive_label, p.metric) == ("multiclass", None, "log_loss")
    df["species"] = np.random.default_rng(3).choice([0, 1, 2, 3], len(df), p=[0.7, 0.2, 0.05, 0.05])
    p = propose(df, "species")
    assert (p.task, p.metric) == ("multiclass", "f1_macro")
    assert "class codes" in p.task_why
    _spec(p)


def test_regression_metric_follows_the_skew() -> None:
    df = _base()
    rng = np.random.default_rng(4)
    df["price"] = rng.normal(100, 10, len(df))
    p = propose(df, "price")
    assert (p.task, p.metric, p.split, p.positive_label) == ("regression", "rmse", "random", None)
    df["price"] = rng.lognormal(0, 1.5, len(df))
    assert propose(df, "price").metric == "mae"
    # Whole numbers with many values are amounts, not classes.
    df["count"] = rng.integers(0, 500, len(df))
    assert propose(df.drop(columns="price"), "count").task == "regression"


def test_bad_targets_are_clear_errors() -> None:
    df = _base()
    with pytest.raises(BadInput, match="not found"):
        propose(df, "nope")
    df["one"] = "a"
    with pytest.raises(BadInput, match="one value"):
        propose(df, "one")
    df["words"] = [f"w{i}" for i in range(len(df))]
    with pytest.raises(BadInput, match="free text or an id"):
        propose(df, "words")
    df["empty"] = np.nan
    with pytest.raises(BadInput, match="entirely null"):
        propose(df, "empty")


def test_constant_all_null_id_and_high_cardinality_columns_are_flagged() -> None:
    df = _base(600)
    rng = np.random.default_rng(5)
    df["order_id"] = np.arange(600) + 10_000
    df["sku"] = [f"S{i}" for i in rng.permutation(600)]  # unique text, not named as an id
    df["comment"] = [f"note {i % 400}" for i in range(600)]  # 400 distinct: free text
    df["country"] = "FR"
    df["nothing"] = np.nan
    df["y"] = rng.random(600) < 0.5
    p = propose(df, "y")
    notes = _notes(p)
    assert p.id_column == "order_id" and "order_id" not in p.excluded
    assert notes["sku"] == {"id_like"}
    assert notes["comment"] == {"high_cardinality"}
    assert notes["country"] == {"constant"} and notes["nothing"] == {"all_null"}
    assert set(p.excluded) == {"sku", "comment", "country", "nothing"}
    assert not {"x", "z", "color"} & set(notes)
    # Every excluded column carries its reason as a comment in the written spec.
    text = render_spec(p, project="t", source=Source(path="d.csv"), origin="a test")
    assert '# CHECK constant: only the value "FR"\n      - "country"' in text
    assert Spec.from_dict(yaml.safe_load(text)).data.features.exclude == p.excluded


def test_dates_make_a_time_split_and_text_dates_are_recognised() -> None:
    df = _base(500)
    start = pd.Timestamp("2024-01-01")
    df["created_at"] = (start + pd.to_timedelta(np.arange(500), unit="h")).strftime(
        "%Y-%m-%d %H:%M"
    )
    df["birthday"] = pd.to_datetime("1990-01-01") + pd.to_timedelta(np.arange(500) % 300, unit="D")
    df["y"] = np.random.default_rng(6).normal(size=500)
    p = propose(df, "y")
    assert (p.timestamp_column, p.split) == ("created_at", "time")
    assert _notes(p)["birthday"] == {"date"} and "birthday" in p.excluded
    assert _spec(p).prepare.split.strategy == "time"
    # Without dates there is no timestamp; a date column with a handful of values is no clock.
    few = _base(500).assign(y=df["y"], day=["2024-01-01", "2024-01-02"] * 250)
    assert propose(few, "y").timestamp_column is None


def test_an_entity_column_makes_a_group_split() -> None:
    df = _base(900)
    df["customer_id"] = np.arange(900) % 150  # six rows per customer
    df["y"] = np.random.default_rng(7).random(900) < 0.4
    p = propose(df, "y")
    assert (p.split, p.group_column) == ("group", "customer_id")
    assert "entities it never saw" in p.split_why
    assert "customer_id" in p.excluded
    split = _spec(p).prepare.split
    assert (split.strategy, split.group_column) == ("group", "customer_id")


def test_leakage_suspects_by_name() -> None:
    df = _base()
    rng = np.random.default_rng(8)
    df["refund_amount"] = rng.random(len(df))
    df["status_final"] = rng.choice(["a", "b"], len(df))
    df["arr_delay"] = rng.normal(size=len(df))
    df["sched_arr_time"] = rng.integers(0, 2400, len(df))
    df["dep_delay"] = rng.normal(size=len(df))
    df["delayed"] = rng.random(len(df)) < 0.3
    p = propose(df, "delayed")
    notes = _notes(p)
    for leaky in ("refund_amount", "status_final", "arr_delay"):
        assert notes[leaky] == {"leakage_name"} and leaky in p.excluded, leaky
    assert "sched_arr_time" not in notes  # planned in advance: not an arrival measurement
    # Named like the target but plausibly known in advance: flagged, kept.
    assert notes["dep_delay"] == {"leakage_name"} and "dep_delay" not in p.excluded


def test_leakage_suspects_by_purity() -> None:
    df = _base(2000)
    rng = np.random.default_rng(9)
    y = rng.random(2000) < 0.3
    df["y"] = np.where(y, "bad", "good")
    df["signal"] = df["x"] + y * 0.8  # a real, imperfect feature
    df["handled_by"] = np.where(y, "team_b", "team_a")  # a category that is the label
    df["score"] = np.where(y, rng.uniform(50, 100, 2000), rng.uniform(0, 49, 2000))  # a threshold
    p = propose(df, "y")
    notes = _notes(p)
    assert notes.get("handled_by") == {"leakage_purity"}
    assert notes.get("score") == {"leakage_purity"}
    assert "signal" not in notes and "x" not in notes
    # Regression: a column that is the target in other units.
    reg = _base(2000).assign(price=rng.lognormal(3, 0.5, 2000))
    reg["total_eur"] = reg["price"] * 1.2
    reg["weight"] = reg["price"] * 0.1 + rng.normal(0, 5, 2000)
    notes = _notes(propose(reg, "price"))
    assert notes.get("total_eur") == {"leakage_purity"}
    assert "weight" not in notes


def test_missing_targets_are_dropped_by_a_transform(tmp_path: Path) -> None:
    df = _base(400)
    df["y"] = np.where(np.arange(400) % 2 == 0, "a", "b").astype(object)
    df.loc[:19, "y"] = None
    p = propose(df, "y")
    assert p.null_targets == 20
    spec = _spec(p)
    assert spec.data.transforms[0].sql == 'SELECT * FROM raw WHERE "y" IS NOT NULL'
    # read_sample reads a file source the way ingest does.
    df.to_csv(tmp_path / "d.csv", index=False)
    back = read_sample(Source(path="d.csv"), tmp_path)
    assert len(back) == 400 and int(back["y"].isna().sum()) == 20
