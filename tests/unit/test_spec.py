"""Spec validation: every error names the key, the bad value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcycle.errors import BadInput
from mlcycle.examples.flights import SPEC
from mlcycle.spec import Spec

MINIMAL = {
    "project": "p",
    "problem": {"task": "binary", "target": "y"},
    "data": {"source": {"path": "d.csv"}},
}


def test_the_example_spec_loads(tmp_path: Path) -> None:
    path = tmp_path / "mlcycle.yaml"
    path.write_text(SPEC)
    spec = Spec.load(path)
    assert spec.problem.metric == "roc_auc"
    assert spec.data.features.include and "arr_delay" not in spec.data.features.include


def test_defaults() -> None:
    spec = Spec.from_dict(MINIMAL)
    assert spec.problem.metric == "roc_auc"
    assert spec.train.candidates[0].estimator == "hist_gradient_boosting"
    assert spec.prepare.split.strategy == "time"


def test_misspelled_key_suggests_the_right_one() -> None:
    raw = {**MINIMAL, "problem": {"task": "binary", "targte": "y"}}
    with pytest.raises(BadInput) as err:
        Spec.from_dict(raw)
    assert "problem.targte" in err.value.why
    assert "did you mean 'target'" in err.value.why
    assert "missing key 'problem.target'" in err.value.why


def test_bad_value_names_key_value_and_allowed() -> None:
    raw = {**MINIMAL, "problem": {"task": "binry", "target": "y"}}
    with pytest.raises(BadInput) as err:
        Spec.from_dict(raw)
    assert "problem.task" in err.value.why
    assert '"binry"' in err.value.why
    assert "binary" in err.value.why and "regression" in err.value.why


def test_metric_must_fit_the_task() -> None:
    raw = {**MINIMAL, "problem": {"task": "regression", "target": "y", "primary_metric": "roc_auc"}}
    with pytest.raises(BadInput, match="rmse"):
        Spec.from_dict(raw)


def test_gate_threshold_on_a_metric_the_task_lacks() -> None:
    raw = {**MINIMAL, "gates": {"thresholds": {"rmse": 1.0}}}
    with pytest.raises(BadInput, match="does not have"):
        Spec.from_dict(raw)


def test_negative_tolerance_is_refused() -> None:
    raw = {**MINIMAL, "gates": {"champion": {"tolerance": -0.1}}}
    with pytest.raises(BadInput, match=r"gates\.champion\.tolerance"):
        Spec.from_dict(raw)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        Spec.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("project: [unclosed")
    with pytest.raises(BadInput, match="not valid YAML"):
        Spec.load(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(BadInput, match="mapping"):
        Spec.load(listy)


def test_hash_changes_with_content() -> None:
    a = Spec.from_dict(MINIMAL)
    b = Spec.from_dict({**MINIMAL, "project": "q"})
    assert a.hash() != b.hash()
    assert a.section_hash("problem") == b.section_hash("problem")
