"""Dataset versions as the monitoring reference or current sample, on a real store; and the
reference's drift calibrations persisted between runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_monitor_engine import FEATURES, SCHEMA, log_day, make_bundle, rows

from mlcycle.artifacts import DatasetVersion
from mlcycle.data.profile import compute_profile
from mlcycle.errors import BadInput, NotFound
from mlcycle.monitor.datasets import list_versions, load_version, resolve_version
from mlcycle.monitor.engine import Monitor, Reference
from mlcycle.monitor.reference import CalibrationFile
from mlcycle.spec import Monitor as MonitorSettings
from mlcycle.store import Store


def put_version(store: Store, frame: pd.DataFrame, source: str) -> str:
    """A dataset version as the data stage stores it: data.parquet + a DatasetVersion record."""
    frame = frame[[*FEATURES, "target"]]
    record = DatasetVersion(
        rows=len(frame),
        columns=list(frame.columns),
        source=source,
        source_fingerprint=source,
        content_hash=str(pd.util.hash_pandas_object(frame).sum()),
        schema=SCHEMA,
        profile=compute_profile(frame, SCHEMA),
    )
    with store.staging() as folder:
        frame.to_parquet(folder / "data.parquet", index=False)
        return store.put(folder, kind="dataset", record=record)


@pytest.fixture
def versions(store: Store) -> tuple[str, str]:
    """(unchanged, shifted): x moved by one standard deviation in the second."""
    return (
        put_version(store, rows(4000, 11), "a.parquet"),
        put_version(store, rows(3000, 12, shift=1.0), "b.parquet"),
    )


def monitor(store: Store, tmp_path: Path, reference: Reference) -> Monitor:
    settings = MonitorSettings(window="day", persistence=2, min_labels=50)
    return Monitor(
        store,
        reference,
        settings,
        str(tmp_path / "log"),
        tmp_path,
        calibration=CalibrationFile.for_reference(tmp_path / "cal", "toy", reference),
    )


def test_versions_resolve_by_id_prefix_and_latest(store: Store, versions: tuple[str, str]) -> None:
    same, shifted = versions
    assert {v["id"] for v in list_versions(store)} == {same, shifted}
    assert resolve_version(store, same[:8]) == same
    assert resolve_version(store, shifted) == shifted
    assert resolve_version(store, "latest") == list_versions(store)[0]["id"]
    version = load_version(store, same[:10], ["x"])
    assert version.frame.columns.tolist() == ["x"] and version.rows == 4000
    assert version.label == f"dataset:{same[:12]}"


def test_unknown_and_wrong_versions_are_clear_errors(
    store: Store, versions: tuple[str, str], tmp_path: Path
) -> None:
    with pytest.raises(NotFound) as missing:
        resolve_version(store, "0123456789ab")
    # The message lists the versions that exist and says what to do.
    assert versions[0][:12] in missing.value.why and "mlcycle data versions" in missing.value.fix
    with pytest.raises(BadInput, match="too short"):
        resolve_version(store, "abc")
    with pytest.raises(BadInput, match="lacks column"):
        load_version(store, versions[0], ["x", "nope"])
    with store.staging() as folder:
        (folder / "x.txt").write_text("x")
        other = store.put(folder, kind="model", record={"name": "m"})
    with pytest.raises(BadInput, match="is a model, not a dataset"):
        resolve_version(store, other[:12])


def test_no_versions_at_all(store: Store) -> None:
    with pytest.raises(NotFound, match="no dataset versions yet"):
        resolve_version(store, "latest")


def test_dataset_version_as_current_and_as_reference(
    store: Store, versions: tuple[str, str], tmp_path: Path
) -> None:
    same, shifted = versions
    bundle = make_bundle(tmp_path)
    mon = monitor(store, tmp_path, Reference.from_bundle(bundle, 1))
    moved = mon.check(load_version(store, shifted).frame, "dataset version b")
    drifted = {f["feature"] for f in moved["drift_report"] if f["drift"]}
    assert drifted == {"x"} and moved["reference"] == "bundle"
    calm = mon.check(load_version(store, same).frame, "dataset version a")
    assert not any(f["drift"] for f in calm["drift_report"])
    # The shifted version as the reference: now the unchanged one has drifted.
    flipped = mon.reference.with_dataset(load_version(store, shifted))
    assert flipped.label == f"dataset:{shifted[:12]}" and "target" in flipped.frame
    other = monitor(store, tmp_path, flipped)
    back = other.check(load_version(store, same).frame, "dataset version a")
    assert {f["feature"] for f in back["drift_report"] if f["drift"]} == {"x"}
    assert back["reference"] == flipped.label
    # "Did the reference see this value" is asked of the version's own profile (all its rows).
    assert flipped.profile is not None and flipped.profile.rows == 3000
    assert other.known.ranges["x"] == (
        flipped.profile.column("x").min,
        flipped.profile.column("x").max,
    )


def test_bad_current_samples_are_refused(store: Store, tmp_path: Path) -> None:
    mon = monitor(store, tmp_path, Reference.from_bundle(make_bundle(tmp_path), 1))
    with pytest.raises(BadInput, match="has no rows"):
        mon.check(rows(10, 1).iloc[:0], "dataset version e")
    with pytest.raises(BadInput, match="lacks feature column"):
        mon.check(rows(100, 1).drop(columns="control"), "dataset version m")
    retyped = rows(100, 1).assign(x="high")
    with pytest.raises(BadInput, match="'x' in dataset version r was retyped"):
        mon.check(retyped, "dataset version r")


def test_reference_version_without_the_features_is_refused(store: Store, tmp_path: Path) -> None:
    narrow = rows(500, 3)[["x", "target"]]
    with store.staging() as folder:
        narrow.to_parquet(folder / "data.parquet", index=False)
        schema = SCHEMA.model_copy(
            update={"columns": [c for c in SCHEMA.columns if c.name in ("x", "target")]}
        )
        record = DatasetVersion(
            rows=500,
            columns=["x", "target"],
            source="n",
            source_fingerprint="n",
            content_hash="n",
            schema=schema,
            profile=compute_profile(narrow, schema),
        )
        version_id = store.put(folder, kind="dataset", record=record)
    reference = Reference.from_bundle(make_bundle(tmp_path), 1)
    with pytest.raises(BadInput, match="lacks feature\\(s\\) control, colour"):
        reference.with_dataset(load_version(store, version_id))


def test_one_window_series_keeps_one_reference(
    store: Store, versions: tuple[str, str], tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path)
    root = str(tmp_path / "log")
    log_day(root, "2026-03-01", 400, 1)
    first = monitor(store, tmp_path, Reference.from_bundle(bundle, 1))
    first.run()
    assert [w.metrics["reference"] for w in first.windows()] == ["bundle"]
    other = monitor(store, tmp_path, first.reference.with_dataset(load_version(store, versions[0])))
    log_day(root, "2026-03-02", 400, 2)
    with pytest.raises(BadInput, match="computed against bundle"):
        other.run()


def test_calibrations_persist_per_reference(store: Store, tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    root = str(tmp_path / "log")
    log_day(root, "2026-03-01", 300, 1)
    first = monitor(store, tmp_path, Reference.from_bundle(bundle, 1))
    first.run()
    assert first.calibration is not None
    saved = json.loads(first.calibration.path.read_text())["calibrations"]
    # One calibration per numeric/categorical feature at the window's size bucket (256).
    assert {(c["feature"], c["test"], c["size"]) for c in saved} == {
        ("x", "wasserstein", 256),
        ("control", "wasserstein", 256),
        ("colour", "js", 256),
    }
    again = monitor(store, tmp_path, Reference.from_bundle(bundle, 1))
    assert again.calibration is not None
    assert again.calibration.load() == first._nulls
    # Calibrations computed another way (an older mlcycle) are recomputed, not reused.
    stale = json.loads(again.calibration.path.read_text()) | {"method": "chunks-v1"}
    again.calibration.path.write_text(json.dumps(stale))
    assert again.calibration.load() == {}
    # A damaged file costs a recalibration, never a failure.
    again.calibration.path.write_text("{not json")
    assert again.calibration.load() == {}
