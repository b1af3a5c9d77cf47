"""`/metrics` under `mlcycle serve --workers 2`: every scrape shows the server's totals.

Each worker used to keep its own counters, so a scrape showed whichever worker
answered it and `rate()` over the series jumped up and down.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_fixtures import build_bundle
from test_serve_workers import MLCYCLE, _both_listening, _children, _free_port, _records

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")


@contextlib.contextmanager
def _serving(
    tmp_path: Path, *extra: str, env_extra: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``mlcycle serve BUNDLE --workers 2`` on a free port, until both workers listen."""
    bundle = build_bundle(tmp_path / "bundle", encoder="ordinal")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    env.update(env_extra or {})
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as sink:
        proc = subprocess.Popen(
            [MLCYCLE, "serve", str(bundle), "--workers", "2", "--port", str(port), *extra],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while not _both_listening(port, proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {errors.read_text()}")
            time.sleep(0.2)
        yield proc, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    with _serving(tmp_path, "--no-log") as running:
        yield running


def _value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match, f"{sample} missing from:\n{text}"
    return float(match.group(1))


def _send(port: int, n: int) -> None:
    """``n`` single-row predictions over 16 connections, which the kernel spreads over both."""
    rows = _records(16)
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}") for _ in range(16)]
    try:
        for i in range(n):
            response = clients[i % 16].post("/predict", json=[rows[i % 16]])
            assert response.status_code == 200, response.text
    finally:
        for client in clients:
            client.close()


def _scrapes(port: int, times: int) -> list[str]:
    # A fresh connection each time: the kernel picks the worker that answers.
    return [httpx.get(f"http://127.0.0.1:{port}/metrics").text for _ in range(times)]


def test_every_scrape_shows_all_workers_requests(server: tuple[subprocess.Popen[str], int]) -> None:
    _, port = server
    _send(port, 48)
    for text in _scrapes(port, 10):
        assert _value(text, 'mlcycle_requests_total{route="/predict",code="200"}') == 48
        assert _value(text, 'mlcycle_request_duration_seconds_count{route="/predict"}') == 48
        assert (
            _value(text, 'mlcycle_request_duration_seconds_bucket{route="/predict",le="+Inf"}')
            == 48
        )
        assert _value(text, "mlcycle_batch_rows_count{}") == 48
        assert _value(text, "mlcycle_requests_in_flight") >= 1  # the scrape itself


def test_the_shared_folder_is_fresh_and_removed_on_stop(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    proc, _ = server
    folders = set()
    for worker in _children(proc.pid):
        env = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        (entry,) = [e for e in env if e.startswith(b"MLCYCLE_METRICS_DIR=")]
        folders.add(Path(entry.split(b"=", 1)[1].decode()))
    (folder,) = folders  # one folder, shared by both workers
    assert folder.is_dir()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert not folder.exists()


def test_metrics_sharing_a_folder_add_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two recorders (as two workers would) in one folder: either one renders the sum."""
    from mlcycle.serve.http.metrics import SHARED_ENV, Metrics

    monkeypatch.setenv(SHARED_ENV, str(tmp_path))
    first, second = Metrics(), Metrics()
    first.observe("/predict", 200, 0.001)
    second.observe("/predict", 200, 0.002)
    second.observe("/predict", 422, 0.003)
    second.swaps += 1
    for m in (first, second):
        text = m.render({}, None)
        assert _value(text, 'mlcycle_requests_total{route="/predict",code="200"}') == 2
        assert _value(text, 'mlcycle_request_errors_total{route="/predict",code="422"}') == 1
        assert _value(text, 'mlcycle_request_duration_seconds_count{route="/predict"}') == 3
        assert _value(text, "mlcycle_model_swaps_total") == 1


def test_every_scrape_shows_all_workers_log_rows(tmp_path: Path) -> None:
    """Each worker has its own log writer; its counts are summed like the rest."""
    from mlcycle import predlog

    root = tmp_path / "log"
    with _serving(tmp_path, env_extra={predlog.ENV_URL: str(root)}) as (_, port):
        _send(port, 48)
        deadline = time.monotonic() + 20  # each worker writes its rows within a second or so
        while time.monotonic() < deadline:
            text = _scrapes(port, 1)[0]
            if _value(text, "mlcycle_prediction_log_rows_total") == 48:
                break
            time.sleep(0.2)
        for text in _scrapes(port, 10):
            assert _value(text, "mlcycle_prediction_log_rows_total") == 48
            assert _value(text, "mlcycle_prediction_log_dropped_total") == 0
            assert _value(text, "mlcycle_prediction_log_queued_rows") == 0
    files = predlog.list_files(str(root), "flights")
    assert len(predlog.read_files(str(root), files)) == 48


def test_model_version_is_what_every_live_worker_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers mid-promotion disagree: no single version is claimed, the split is shown."""
    from mlcycle.serve.http.metrics import SHARED_ENV, Metrics

    monkeypatch.setenv(SHARED_ENV, str(tmp_path))
    first, second = Metrics(), Metrics()
    first.set_versions({"champion": 1, "challenger": None})
    second.set_versions({"champion": 1, "challenger": None})
    for m in (first, second):
        text = m.render(None, None)
        assert _value(text, 'mlcycle_model_version{role="champion"}') == 1
        assert _value(text, 'mlcycle_model_version_workers{role="champion",version="1"}') == 2
        assert 'role="challenger"' not in text
    second.set_versions({"champion": 2, "challenger": None})  # promoted; first not yet
    for m in (first, second):
        text = m.render(None, None)
        assert 'mlcycle_model_version{role="champion"}' not in text
        assert _value(text, 'mlcycle_model_version_workers{role="champion",version="1"}') == 1
        assert _value(text, 'mlcycle_model_version_workers{role="champion",version="2"}') == 1
    first.render({"champion": 2, "challenger": None}, None)  # its scrape records it first
    text = second.render(None, None)
    assert _value(text, 'mlcycle_model_version{role="champion"}') == 2
    assert 'version="1"' not in text


def test_a_dead_workers_version_does_not_count(tmp_path: Path) -> None:
    """The version slots are a gauge of live workers: a dead worker's file is skipped."""
    import json

    from mlcycle.serve.http import metrics as metrics_module

    old = os.environ.get(metrics_module.SHARED_ENV)
    os.environ[metrics_module.SHARED_ENV] = str(tmp_path)
    try:
        live = metrics_module.Metrics()
        live.set_versions({"champion": 2})
        live.add("log_rows", 5)
        dead = metrics_module.Metrics()
        dead.set_versions({"champion": 1})
        dead.add("log_rows", 7)
        # Rename the second recorder's files to a pid that is gone.
        gone = 2**22 + 12345
        for path in tmp_path.glob(f"{os.getpid()}_*"):
            if path.stem == dead._name:
                path.rename(tmp_path / f"{gone}_0{path.suffix}")
        assert not metrics_module._alive(gone)
        text = live.render(None, None)
        assert json.loads((tmp_path / f"{gone}_0.json").read_text())
        # Counters are not gauges: a dead worker's log rows still count.
        assert live.totals()[("log_rows", ())] == [12.0]
    finally:
        if old is None:
            os.environ.pop(metrics_module.SHARED_ENV, None)
        else:
            os.environ[metrics_module.SHARED_ENV] = old
    assert _value(text, 'mlcycle_model_version{role="champion"}') == 2
    assert 'version="1"' not in text
