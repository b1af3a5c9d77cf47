"""Helpers for the serve tests: a small real model bundle and a live uvicorn server.

Not a conftest: imported explicitly by the serve tests (unit and integration).
"""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd
import pytest
import uvicorn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from mlcycle.artifacts import BundleMeta
from mlcycle.schema import ColumnSchema, Schema

CARRIERS = ["AA", "B6", "DL", "UA", "WN"]
ORIGINS = ["ATL", "BOS", "EWR", "JFK", "LGA", "ORD"]
FEATURES = ["dep_delay", "distance", "carrier", "origin", "weekend"]
Task = Literal["binary", "multiclass", "regression"]


def flights_frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A flights-like frame: id, features (with some nulls) and three targets."""
    rng = np.random.default_rng(seed)
    dep_delay = rng.normal(10, 30, n)
    frame = pd.DataFrame(
        {
            "flight_id": [f"F{i:05d}" for i in range(n)],
            "dep_delay": np.where(rng.random(n) < 0.05, np.nan, dep_delay),
            "distance": rng.integers(100, 3000, n),
            "carrier": pd.Series(rng.choice(CARRIERS, n), dtype="str"),
            "origin": pd.Series(rng.choice(ORIGINS, n), dtype="str").where(rng.random(n) > 0.03),
            "weekend": rng.random(n) < 0.3,
        }
    )
    late = dep_delay + 8 * (frame["carrier"] == "WN") + rng.normal(0, 10, n)
    frame["delayed"] = late > 15
    frame["status"] = np.where(late > 15, "late", np.where(late < 0, "early", "on_time"))
    frame["arr_delay"] = late
    return frame


def schema() -> Schema:
    return Schema(
        columns=[
            ColumnSchema(name="flight_id", kind="string", role="id", nullable=False, unique=True),
            ColumnSchema(name="dep_delay", kind="numeric", nullable=True, min=-100, max=300),
            ColumnSchema(name="distance", kind="numeric", nullable=False, min=50, max=5000),
            ColumnSchema(name="carrier", kind="categorical", nullable=False, categories=CARRIERS),
            ColumnSchema(name="origin", kind="categorical", nullable=True, categories=ORIGINS),
            ColumnSchema(name="weekend", kind="boolean", nullable=False),
            ColumnSchema(name="delayed", kind="boolean", role="target", nullable=False),
            ColumnSchema(name="status", kind="categorical", role="target", nullable=False),
            ColumnSchema(name="arr_delay", kind="numeric", role="target", nullable=False),
        ]
    )


def build_bundle(
    folder: Path,
    *,
    task: Task = "binary",
    unseen: Literal["reject", "unknown"] = "reject",
    name: str = "flights",
    n: int = 1500,
    encoder: Literal["onehot", "ordinal"] = "onehot",
    seed: int = 0,
) -> Path:
    """Fit a real pipeline and write model.joblib, meta.json and schema.json into ``folder``."""
    frame = flights_frame(n, seed=seed)
    target = {"binary": "delayed", "multiclass": "status", "regression": "arr_delay"}[task]
    pre = ColumnTransformer(
        [
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ["carrier", "origin"],
            )
        ],
        remainder="passthrough",
    )
    if encoder == "ordinal":
        # What mlcycle/features.py builds for tree families.
        pre = ColumnTransformer(
            [
                ("num", "passthrough", ["dep_delay", "distance", "weekend"]),
                (
                    "cat",
                    OrdinalEncoder(
                        categories=[CARRIERS, ORIGINS],
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                        encoded_missing_value=np.nan,
                        dtype="float64",
                    ),
                    ["carrier", "origin"],
                ),
            ],
            remainder="drop",
            verbose_feature_names_out=False,
        )
    estimator: Any = (
        HistGradientBoostingRegressor(max_iter=20)
        if task == "regression"
        else HistGradientBoostingClassifier(max_iter=20)
    )
    model = Pipeline([("pre", pre), ("model", estimator)]).fit(frame[FEATURES], frame[target])
    classes = None if task == "regression" else np.asarray(model.classes_).tolist()
    meta = BundleMeta(
        name=name,
        task=task,
        target=target,
        positive_label=True if task == "binary" else None,
        classes=classes,
        features=FEATURES,
        id_column="flight_id",
        dataset_id="ds-test",
        model_artifact_id="model-test",
        spec_hash="0" * 64,
        mlcycle_version="0.1.0",
        created_at="2026-01-01T00:00:00Z",
        unseen_category=unseen,
    )
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    (folder / "meta.json").write_text(meta.model_dump_json(indent=2), encoding="utf-8")
    (folder / "schema.json").write_text(schema().model_dump_json(indent=2), encoding="utf-8")
    frame[[*FEATURES, target]].head(500).to_parquet(folder / "reference.parquet", index=False)
    return folder


def good_record(i: int = 0) -> dict[str, Any]:
    """One valid JSON record (as a client would send it)."""
    return {
        "dep_delay": float(i * 7 % 60) - 5.0,
        "distance": 200 + 37 * i,
        "carrier": CARRIERS[i % len(CARRIERS)],
        "origin": ORIGINS[i % len(ORIGINS)],
        "weekend": i % 3 == 0,
    }


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 on a free port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    """Undo the app's GC settings (``serve/model/gctune.py``) after each test: they are
    process-wide, and the rest of the suite runs in this process."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def cli_in_fresh_process(args: list[str], roots: tuple[str, ...]) -> tuple[str, list[str]]:
    """Run ``mlcycle ARGS`` in a fresh interpreter: its stdout, and the modules it imported
    of ``roots`` (packages: ``sklearn`` or ``mlcycle.store``, with their submodules).

    Fails the test when the command fails.
    """
    import json
    import os
    import subprocess
    import sys

    job = (
        "import json, sys\n"
        "from mlcycle.cli.main import main\n"
        "sys.argv = ['mlcycle', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"roots = {roots!r}\n"
        "found = sorted(m for m in sys.modules if any(m == r or m.startswith(r + '.') "
        "for r in roots))\n"
        "print(json.dumps(found), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    done = subprocess.run(
        [sys.executable, "-c", job, *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])
