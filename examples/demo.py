"""The whole lifecycle on the flights example, through the real CLI (run by `make demo`).

init → run (ingest … promote) → serve + one REST request → batch prediction →
a monitoring replay of July–December (scored month by month, labels a month
late) → a second, cached run. Every command is printed before it runs, so this
doubles as a tour of the CLI. Every alert the replay raises is shown with the
data behind it (training months against the alert's month) and why it is real.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEMO = Path(os.environ.get("MLCYCLE_DEMO_DIR", ROOT / ".demo" / "flights"))
MLCYCLE = [str(Path(sys.executable).parent / "mlcycle")]


def sh(*args: str, capture: bool = False) -> str:
    print(f"\n$ mlcycle {' '.join(args)}", flush=True)
    result = subprocess.run(
        [*MLCYCLE, *args], cwd=DEMO, text=True, capture_output=capture, check=False
    )
    if result.returncode != 0:
        if capture:
            sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"demo: `mlcycle {' '.join(args)}` failed (exit {result.returncode})")
    return result.stdout if capture else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_once(port: int) -> None:
    print(f"\n$ curl -X POST http://127.0.0.1:{port}/predict -d '[{{…one flight…}}]'", flush=True)
    # The features of the example's spec: what is known when the plane leaves the gate.
    row = {
        "dep_delay": 42.0,
        "hour": 17,
        "day_of_week": 6,
        "carrier": "UA",
        "origin": "EWR",
        "dest": "ORD",
        "distance": 719,
    }
    response = httpx.post(f"http://127.0.0.1:{port}/predict", json=[row], timeout=10)
    response.raise_for_status()
    print(json.dumps(response.json(), indent=2))


def serve_and_request() -> None:
    port = free_port()
    print(f"\n$ mlcycle serve models:/flights@champion --port {port} &", flush=True)
    server = subprocess.Popen(
        [*MLCYCLE, "serve", "models:/flights@champion", "--port", str(port)], cwd=DEMO
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("demo: the REST service did not become ready")
            time.sleep(0.2)
        request_once(port)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def show_replay(replayed: dict[str, Any]) -> None:
    """Each replayed month in one line."""
    for step in replayed["steps"]:
        month = step["month"] or "(late labels)"
        scored = f"scored {step['scored']:>6}" if step["scored"] is not None else " " * 13
        labels = (
            f"labels for {step['labels_for']}: {step['labels_stored']:>6}"
            if step["labels_for"]
            else ""
        )
        print(f"  {month:<14}{scored}  {labels:<28}{step['alerts_new']} new alert(s)")


class Review:
    """Every alert of the replay with the figures behind it, computed from the data, and
    whether it is real. Nothing is explained away: an alert of a kind not reviewed here
    says so, and a performance alert whose drop is within the uncertainty of the window
    and the holdout together is called a false alarm."""

    def __init__(self, shown: dict[str, Any]) -> None:
        from mlcycle.monitor.anomaly import OutlierModel

        data = DEMO / "data"
        self.train = pd.read_parquet(data / "flights.parquet")
        future = pd.read_parquet(data / "flights_future.parquet")
        scored = pd.read_parquet(DEMO / "predictions" / "july_december.parquet")
        self.future = future.merge(scored[["flight_id", "probability"]], on="flight_id")
        # The replay cuts windows by the timestamp's calendar month, as here.
        self.windows = pd.to_datetime(self.future["time_hour"], utc=True).dt.strftime("%Y-%m")
        self.holdout = shown["metrics"]["roc_auc"], shown["intervals"]["roc_auc"]
        self.outliers = OutlierModel.load(Path(shown["bundle_path"]))

    def show(self, alerts: list[dict[str, Any]]) -> None:
        print(f"\n{len(alerts)} alert(s) in July–December; the data behind each:")
        for alert in alerts:
            rows = self.future[self.windows == alert["window"]]
            rule, window = alert["rule"], alert["window"]
            kind = rule.split(":", 1)[0]
            evidence, verdict = getattr(self, kind, self.unreviewed)(rule, rows, window)
            print(f"\n  {window}  {alert['severity']:<8} {alert['message']}")
            print(f"    evidence: {evidence}")
            print(f"    verdict:  {verdict}")

    def unreviewed(self, rule: str, rows: pd.DataFrame, window: str) -> tuple[str, str]:
        return self.late(rows, window), "not reviewed for this demo: read the report"

    def late(self, rows: pd.DataFrame, window: str) -> str:
        return (
            f"late flights {self.train['delayed'].mean():.1%} in January–June → "
            f"{rows['delayed'].mean():.1%} in {window}"
        )

    def data_drift(self, rule: str, rows: pd.DataFrame, window: str) -> tuple[str, str]:
        column, train = rule.split(":", 1)[1], self.train
        if column == "dep_delay":
            return (
                f"dep_delay mean {train[column].mean():.1f} → {rows[column].mean():.1f} min, "
                f"90th percentile {train[column].quantile(0.9):.0f} → "
                f"{rows[column].quantile(0.9):.0f} (January–June → {window})",
                "real: departure delays follow the season (summer storms, holiday peaks,"
                " calm autumn); the model's strongest input moved, and with it the predictions",
            )
        return self.unreviewed(rule, rows, window)

    def prediction_drift(self, rule: str, rows: pd.DataFrame, window: str) -> tuple[str, str]:
        return (
            f"{self.late(rows, window)}; mean P(delayed) in {window} "
            f"{rows['probability'].mean():.1%}",
            "real: fewer flights were late, and the predicted probabilities fell with them",
        )

    def anomaly_rate(self, rule: str, rows: pd.DataFrame, window: str) -> tuple[str, str]:
        if self.outliers is None:
            return self.unreviewed(rule, rows, window)
        odd = rows[self.outliers.scores(rows) > self.outliers.threshold]
        where = odd["dest"].value_counts().head(2).index
        share = ", ".join(
            f"{d} {(self.train['dest'] == d).mean():.2%} → {(rows['dest'] == d).mean():.2%}"
            for d in where
        )
        return (
            f"{len(odd)} anomalous rows: {(odd['dep_delay'] > 120).mean():.0%} left over 2 h"
            f" late (all {window} rows: {(rows['dep_delay'] > 120).mean():.1%}); their top"
            f" destinations {', '.join(where)} (share of flights, January–June → {window}:"
            f" {share})",
            f"real: the rows unlike January–June are extreme delays and routes January–June"
            f" barely flew ({', '.join(where)}: in summer, the islands of Nantucket, ACK, and"
            f" Martha's Vineyard, MVY)",
        )

    def performance(self, rule: str, rows: pd.DataFrame, window: str) -> tuple[str, str]:
        auc, se = auc_with_se(rows["delayed"], rows["probability"])
        holdout, (low, high) = self.holdout
        # Two estimates, two uncertainties: the difference against both together.
        z = (holdout - auc) / math.hypot(se, (high - low) / (2 * 1.96))
        evidence = (
            f"ROC-AUC {auc:.4f} ± {1.96 * se:.4f} on {len(rows):,} labelled flights of {window};"
            f" holdout {holdout:.4f} [{low:.4f}, {high:.4f}]; difference z = {z:.1f}"
        )
        if z < 1.96:
            return evidence, (
                "false alarm: within the uncertainty of the window and the holdout together"
                " (the monitor's band counts the window's uncertainty only)"
            )
        return evidence, (
            "real: the drop is far beyond both uncertainties; more of the late arrivals"
            " left on time (" + self.left_on_time(rows, window) + "), which a model that"
            " knows the departure delay cannot foresee"
        )

    def concept_drift(self, rule: str, rows: pd.DataFrame, window: str) -> tuple[str, str]:
        evidence, verdict = self.performance(rule, rows, window)
        if verdict.startswith("real"):
            verdict = (
                "real: the inputs did not drift, yet the ROC-AUC fell: the link between"
                " departure and arrival delay changed (late arrivals that left on time: "
                + self.left_on_time(rows, window)
                + ")"
            )
        return evidence, verdict

    def left_on_time(self, rows: pd.DataFrame, window: str) -> str:
        def share(frame: pd.DataFrame) -> float:
            return float((frame.loc[frame["delayed"], "dep_delay"] <= 5).mean())

        return f"{share(self.train):.1%} in January–June → {share(rows):.1%} in {window}"


def auc_with_se(label: pd.Series, score: pd.Series) -> tuple[float, float]:
    """ROC-AUC and its standard error (Hanley & McNeil, 1982)."""
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(label, score))
    n1, n0 = int(label.sum()), int((~label.astype(bool)).sum())
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)
    return auc, math.sqrt(var / (n1 * n0))


def main() -> None:
    if DEMO.exists():
        shutil.rmtree(DEMO)
    DEMO.mkdir(parents=True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    sh("init", ".", "--example", "flights")
    timings["init"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    sh("run")
    timings["run"] = time.perf_counter() - t0

    serve_and_request()

    t0 = time.perf_counter()
    sh(
        "predict",
        "models:/flights@champion",
        "--input",
        "data/flights_future.parquet",
        "--output",
        "predictions/july_december.parquet",
    )
    timings["predict"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    replayed = json.loads(
        sh(
            *("monitor", "replay", "--label-delay", "1"),
            *("--report", "reports/monitor_july_december.html", "--json"),
            capture=True,
        )
    )
    timings["replay"] = time.perf_counter() - t0
    show_replay(replayed)

    t0 = time.perf_counter()
    sh("run")
    timings["cached_run"] = time.perf_counter() - t0

    shown = json.loads(sh("models", "show", "flights@champion", "--json", capture=True))
    print("\n" + "=" * 72)
    print(f"champion: {shown['name']} v{shown['version']}  (bundle {shown['bundle_id'][:12]})")
    print(f"{'holdout metric':<16}{'champion':>10}{'baseline':>10}")
    for name, value in shown["metrics"].items():
        base = shown["baseline_metrics"].get(name)
        print(f"{name:<16}{value:>10.4f}{'' if base is None else f'{base:>10.4f}'}")
    if shown.get("decision_threshold") is not None:
        # The flights spec has a benefit matrix: its threshold (chosen on
        # validation) is what /predict and batch label with, not 0.5.
        print(f"decision threshold: P(delayed) ≥ {shown['decision_threshold']:.4f} → delayed")
    print(f"\nproject:      {DEMO}")
    print(f"model bundle: {shown['bundle_path']}  (MODEL_CARD.md, evaluation.json, blessing.json)")
    print(f"predictions:  {DEMO / 'predictions' / 'july_december.parquet'}")
    print(f"monitoring:   {DEMO / 'reports' / 'monitor_july_december.html'}")
    print(f"serve it:     cd {DEMO} && {MLCYCLE[0]} serve models:/flights@champion")
    print("timings (s):  " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))
    print("=" * 72)
    Review(shown).show(replayed["alerts"])


if __name__ == "__main__":
    main()
