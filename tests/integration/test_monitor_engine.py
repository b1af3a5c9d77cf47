"""Incremental monitoring of a prediction log on a real store: windows, drift, labels,
performance, alerts through real sinks (a JSON-lines file and HTTP servers on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle.artifacts import BundleMeta, Evaluation
from mlcycle.errors import BadInput
from mlcycle.monitor.alerts import deliver, list_alerts
from mlcycle.monitor.anomaly import fit_outlier_model
from mlcycle.monitor.engine import Monitor, Reference
from mlcycle.monitor.labels import ingest_labels
from mlcycle.predlog import list_files, write_predictions
from mlcycle.schema import ColumnSchema, Schema
from mlcycle.spec import AlertRule, AlertSinks
from mlcycle.spec import Monitor as MonitorSettings
from mlcycle.store import Store

FEATURES = ["x", "control", "colour"]
SCHEMA = Schema(
    columns=[
        ColumnSchema(name="x", kind="numeric", min=-6.0, max=6.0),
        ColumnSchema(name="control", kind="numeric"),
        ColumnSchema(name="colour", kind="categorical", categories=["red", "green", "blue"]),
        ColumnSchema(name="target", kind="boolean", role="target"),
    ]
)


def rows(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    p = 1 / (1 + np.exp(-2 * x))  # the model's probability, calibrated
    return pd.DataFrame(
        {
            "x": x,
            "control": rng.normal(0.0, 1.0, n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "probability": p,
            "target": rng.uniform(size=n) < p,
        }
    )


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path)


def make_bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    meta = BundleMeta(
        name="toy",
        task="binary",
        target="target",
        positive_label=True,
        classes=[False, True],
        features=FEATURES,
        id_column="id",
        metrics={"roc_auc": 0.75},
        dataset_id="d",
        model_artifact_id="m",
        spec_hash="s",
        mlcycle_version="0",
        created_at="2026-01-01",
    )
    (folder / "meta.json").write_text(meta.model_dump_json())
    (folder / "schema.json").write_text(SCHEMA.model_dump_json())
    ref = rows(5000, 0)
    ref[[*FEATURES, "target"]].to_parquet(folder / "reference.parquet", index=False)
    ref[["probability"]].to_parquet(folder / "ref_preds.parquet", index=False)
    fit_outlier_model(folder)
    return folder


def log_day(root: str, day: str, n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    frame = rows(n, seed, shift)
    frame["ts"] = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.arange(n), unit="s")
    frame["request_id"] = [f"{day}-{i}" for i in range(n)]
    frame["row_id"] = frame["request_id"]
    frame["model"] = "toy"
    frame["model_version"] = 1
    frame["role"] = "batch"
    frame["prediction"] = np.where(frame["probability"] >= 0.5, "True", "False")
    write_predictions(root, "toy", frame.drop(columns="target"))
    return frame


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("H", (Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    server.shutdown()
    server.server_close()


def make_monitor(store: Store, bundle: Path, tmp_path: Path, sinks: AlertSinks) -> Monitor:
    settings = MonitorSettings(window="day", persistence=2, min_labels=50, sinks=sinks)
    preds = pd.read_parquet(bundle / "ref_preds.parquet")
    reference = Reference.from_bundle(bundle, version=1, predictions=preds)
    return Monitor(store, reference, settings, str(tmp_path / "log"), tmp_path, primary="roc_auc")


def test_incremental_drift_labels_performance_and_alerts(
    store: Store, bundle: Path, tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    sinks = AlertSinks(jsonl="alerts.jsonl", webhook=url, webhook_backoff_s=0.0)
    mon = make_monitor(store, bundle, tmp_path, sinks)
    root = mon.root
    days = ["2013-07-01", "2013-07-02", "2013-07-03", "2013-07-04", "2013-07-05", "2013-07-06"]
    logged = [log_day(root, d, 400, seed=10 + i) for i, d in enumerate(days[:3])]
    first = mon.run()
    assert first["new_files"] == 3 and first["windows_updated"] == days[:3]
    assert first["alerts_new"] == 0
    # x moves by one standard deviation from the 4th day on; the control never moves.
    logged += [log_day(root, d, 400, seed=20 + i, shift=1.0) for i, d in enumerate(days[3:])]
    second = mon.run()
    assert second["new_files"] == 3 and second["windows_updated"] == days[3:]
    assert mon.run()["new_files"] == 0  # nothing new: nothing read

    wins = {w.key: w.metrics for w in mon.windows()}
    # Each flag is a 99% decision, so an unshifted day may flag by chance (day 1 here
    # has a 3-standard-error dip in x); persistence is what keeps that from alerting.
    assert [wins[d]["drift:x"] for d in days[3:]] == [1, 1, 1]
    assert sum(wins[d]["drift:x"] for d in days[:3]) <= 1
    assert sum(wins[d]["drift:control"] for d in days) <= 1
    assert wins["2013-07-06"]["prediction_drift"] == 1.0
    assert wins["2013-07-05"]["anomaly_rate"] > wins["2013-07-01"]["anomaly_rate"]
    assert "estimated:roc_auc" in wins["2013-07-01"] and "domain_auc" in wins["2013-07-06"]

    alerts = list_alerts(store, "toy")
    fired = {(a["rule"], a["window"]) for a in alerts}
    assert ("data_drift:x", "2013-07-05") in fired  # the 2nd drifted day: persistence 2
    assert not any(a["rule"] == "data_drift:control" for a in alerts)
    assert all(a["model_version"] == 1 and a["pending"] == [] for a in alerts)
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == len(alerts) == len(received)
    assert {r["rule"] for r in received} == {a["rule"] for a in alerts}

    # Labels arrive late, in two pieces, with an unknown id and a duplicate.
    truth = pd.concat(logged)[["row_id", "target"]].rename(columns={"row_id": "id"})
    known = set(pd.concat(logged)["row_id"])
    part = pd.concat(
        [truth.iloc[:800], truth.iloc[[5]], pd.DataFrame({"id": ["nope"], "target": [True]})]
    )
    report = ingest_labels(
        store, "toy", part, id_column="id", label_column="target", known_ids=known
    )
    assert report["stored"] == 799 and report["duplicates"] == 2 and report["unknown_ids"] == 1
    assert report["unknown_examples"] == ["nope"] and report["duplicate_examples"] == [
        truth.iloc[5]["id"]
    ]
    again = ingest_labels(
        store, "toy", truth, id_column="id", label_column="target", known_ids=known
    )
    assert again["stored"] == len(truth) - 799 and again["unchanged"] == 799
    flipped = truth.iloc[:3].assign(target=~truth.iloc[:3]["target"])
    conflict = ingest_labels(
        store, "toy", flipped, id_column="id", label_column="target", known_ids=known
    )
    assert conflict["conflicts"] == 3 and conflict["stored"] == 0

    mon.run()
    wins = {w.key: w.metrics for w in mon.windows()}
    day1 = wins["2013-07-01"]
    assert day1["labels"] == 400 and 0.6 < day1["realized:roc_auc"] < 0.95
    lo, hi = day1["realized:roc_auc_ci"]
    assert lo < day1["realized:roc_auc"] < hi
    assert wins["2013-07-06"]["cumulative:n"] == 2400 and wins["2013-07-06"]["sliding:n"] == 1200
    assert "estimate_error:roc_auc" in wins["2013-07-03"]
    assert abs(wins["2013-07-03"]["estimate_error:roc_auc"]) < 0.1


def test_webhook_down_keeps_the_alert_and_retries(
    store: Store, bundle: Path, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet
    sinks = AlertSinks(webhook=f"http://127.0.0.1:{port}/a", webhook_retries=2, webhook_backoff_s=0)
    settings = MonitorSettings(
        window="day",
        sinks=sinks,
        alerts=[AlertRule(name="busy", metric="rows", above=10, persistence=1)],
    )
    preds = pd.read_parquet(bundle / "ref_preds.parquet")
    mon = Monitor(
        store, Reference.from_bundle(bundle, 1, preds), settings, str(tmp_path / "log"), tmp_path
    )
    log_day(mon.root, "2013-07-01", 100, seed=1)
    summary = mon.run()
    assert summary["alerts_new"] == 1 and summary["pending"] == 1
    [alert] = list_alerts(store, "toy")
    assert alert["pending"] == ["webhook"] and alert["attempts"] == 3
    assert "ConnectError" in (alert["last_error"] or "")
    assert alert["window"] == "2013-07-01" and alert["model_version"] == 1

    received: list[dict[str, Any]] = []
    handler = type("H", (Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        counts = deliver(store, "toy", sinks, tmp_path, sleep=lambda s: None)
    finally:
        server.shutdown()
        server.server_close()
    assert counts == {"delivered": 1, "pending": 0}
    assert [r["rule"] for r in received] == ["busy"]
    assert list_alerts(store, "toy")[0]["pending"] == []
    assert deliver(store, "toy", sinks, tmp_path) == {"delivered": 0, "pending": 0}


def test_bad_log_files_get_clear_errors(store: Store, bundle: Path, tmp_path: Path) -> None:
    mon = make_monitor(store, bundle, tmp_path, AlertSinks())
    frame = log_day(mon.root, "2013-07-01", 50, seed=1)
    mon.run()
    retyped = frame.drop(columns="target").assign(x="high", ts=pd.Timestamp("2013-07-02", tz="UTC"))
    write_predictions(mon.root, "toy", retyped)
    with pytest.raises(BadInput, match=r"'x' .* was retyped"):
        mon.run()
    for path in list_files(mon.root, "toy")[1:]:
        Path(path).unlink()
    missing = frame.drop(columns=["target", "control"]).assign(
        ts=pd.Timestamp("2013-07-03", tz="UTC")
    )
    write_predictions(mon.root, "toy", missing)
    with pytest.raises(BadInput, match=r"lacks column.*control"):
        mon.run()
    with pytest.raises(BadInput, match=r"no column 'label'"):
        ingest_labels(
            store, "toy", frame, id_column="row_id", label_column="label", known_ids=set()
        )
    with pytest.raises(BadInput, match=r"no rows"):
        ingest_labels(
            store, "toy", frame.iloc[:0], id_column="row_id", label_column="target", known_ids=set()
        )


def test_tiny_windows_never_alert(store: Store, bundle: Path, tmp_path: Path) -> None:
    mon = make_monitor(store, bundle, tmp_path, AlertSinks())
    for i, day in enumerate(["2013-07-01", "2013-07-02", "2013-07-03"]):
        log_day(mon.root, day, 5, seed=i, shift=5.0)
    mon.run()
    assert all(w.metrics.get("too_small") for w in mon.windows())
    assert list_alerts(store, "toy") == []


def test_reference_without_the_features(store: Store, bundle: Path) -> None:
    pd.DataFrame({"x": [1.0]}).to_parquet(bundle / "reference.parquet")
    with pytest.raises(BadInput, match=r"lacks feature.*control"):
        Reference.from_bundle(bundle)


def test_row_count_windows(store: Store, bundle: Path, tmp_path: Path) -> None:
    mon = make_monitor(store, bundle, tmp_path, AlertSinks())
    mon.settings = mon.settings.model_copy(update={"window": "rows:300"})
    log_day(mon.root, "2013-07-01", 400, seed=1)
    mon.run()
    wins = mon.windows()
    assert [(w.key, w.metrics["rows"], w.metrics["partial"]) for w in wins] == [
        ("rows-0000000", 300, False),
        ("rows-0000001", 100, True),
    ]
    log_day(mon.root, "2013-07-02", 250, seed=2)
    summary = mon.run()
    assert summary["windows_updated"] == ["rows-0000001", "rows-0000002"]
    sizes = {w.key: w.metrics["rows"] for w in mon.windows()}
    assert sizes == {"rows-0000000": 300, "rows-0000001": 300, "rows-0000002": 50}
    assert len(mon.window_rows("rows-0000001")) == 300


def test_labels_land_in_the_windows_that_exist_whatever_the_spec_window(
    store: Store, bundle: Path, tmp_path: Path
) -> None:
    """A replay cuts months while the spec says day: a later `monitor run` with the spec's
    window must still join labels into the stored monthly windows."""
    monthly = make_monitor(store, bundle, tmp_path, AlertSinks())
    monthly.settings = monthly.settings.model_copy(update={"window": "month"})
    logged = log_day(monthly.root, "2013-07-01", 300, seed=3)
    monthly.run()
    truth = logged[["row_id", "target"]].rename(columns={"row_id": "id"})
    ingest_labels(
        store, "toy", truth, id_column="id", label_column="target", known_ids=set(truth["id"])
    )
    daily = make_monitor(store, bundle, tmp_path, AlertSinks())
    assert daily.settings.window == "day"
    daily.run()
    (window,) = daily.windows()
    assert window.key == "2013-07" and window.metrics["labels"] == 300


@pytest.mark.parametrize("holdout_ci", [None, (0.71, 0.79)])
def test_the_realized_band_counts_the_holdouts_uncertainty_too(
    store: Store, tmp_path: Path, holdout_ci: tuple[float, float] | None
) -> None:
    # Both the window's AUC and the holdout's are estimates: the band under the holdout
    # is the half-width of their difference's interval, sqrt(w² + h²), not w alone.
    folder = make_bundle(tmp_path)
    if holdout_ci is not None:
        evaluation = Evaluation(
            task="binary",
            primary_metric="roc_auc",
            rows=1000,
            metrics={"candidate": {"roc_auc": 0.75}},
            intervals={"candidate": {"roc_auc": holdout_ci}},
        )
        (folder / "evaluation.json").write_text(evaluation.model_dump_json())
    mon = make_monitor(store, folder, tmp_path, AlertSinks())
    logged = log_day(mon.root, "2013-07-01", 400, seed=3)
    mon.run()
    truth = logged[["row_id", "target"]].rename(columns={"row_id": "id"})
    ingest_labels(
        store, "toy", truth, id_column="id", label_column="target", known_ids=set(truth["id"])
    )
    mon.run()
    day = mon.windows()[0].metrics
    lo, hi = day["realized:roc_auc_ci"]
    window_half = (hi - lo) / 2
    half = window_half if holdout_ci is None else float(np.hypot(window_half, 0.04))
    assert day["band:realized:roc_auc"][0] == pytest.approx(0.75 - half)
    assert day["band:realized:roc_auc"][1] is None
