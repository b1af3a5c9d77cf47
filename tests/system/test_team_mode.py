"""Team mode on real servers: two folders that share nothing but the store URLs.

As two machines would: metadata on PostgreSQL (a fresh schema), artifacts and
the prediction log on S3 (moto's server on loopback). Folder A trains and
serves; folder B — which never trained — serves the champion, scores a batch
into the bucket, and monitors the prediction log A's server wrote; then B
promotes the other version and A's running server picks it up. Every step is
a real `mlcycle` process. Needs MLCYCLE_TEST_POSTGRES_URL (CI sets it).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from conftest import POSTGRES_URL, postgres_schema_url
from loop_fixtures import NAME, data, spec
from s3_fixtures import new_bucket, process_env

pytestmark = [pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow]

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")
FEATURES = ["x1", "x2", "x3", "x4"]


@pytest.fixture
def team_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment both machines share: a PostgreSQL schema and a fresh S3 bucket."""
    if not POSTGRES_URL:
        pytest.skip("team mode needs PostgreSQL: MLCYCLE_TEST_POSTGRES_URL is not set")
    s3_server = request.getfixturevalue("s3_server")  # started only when the test runs
    for store_url in postgres_schema_url():
        bucket = new_bucket(s3_server)
        yield process_env(
            s3_server,
            tmp_path,
            MLCYCLE_STORE_URL=store_url,
            MLCYCLE_ARTIFACTS_URL=f"{bucket}/mlcycle",
        )


def _cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [MLCYCLE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"mlcycle {' '.join(args)} in {cwd.name}:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def _folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "mlcycle.yaml").write_text(yaml.safe_dump(spec()))
    return folder


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A running `mlcycle serve` process of one folder."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.base = f"http://127.0.0.1:{_port()}"
        self.log = cwd / "serve.log"
        port = self.base.rsplit(":", 1)[1]
        self.proc = subprocess.Popen(
            [MLCYCLE, "serve", f"models:/{NAME}@champion", "--port", port, "--poll", "0.5"],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        _until(lambda: self._ready(), 120, f"{cwd.name}'s server to start", self)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.base}/v2/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def version(self) -> int:
        meta = httpx.get(f"{self.base}/v2/models/{NAME}", timeout=5).json()
        return int(meta["versions"][0])

    def predict(self, rows: pd.DataFrame) -> dict[str, Any]:
        answer = httpx.post(f"{self.base}/predict", json=rows.to_dict("records"), timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a graceful stop writes the log's last rows
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _until(
    check: Callable[[], bool], seconds: float, what: str, server: Server | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if server is not None and server.proc.poll() is not None:
            raise AssertionError(f"{what}: the server exited\n{server.log.read_text()}")
        if time.monotonic() > deadline:
            log = server.log.read_text() if server is not None else ""
            raise AssertionError(f"timed out waiting for {what}\n{log}")
        time.sleep(0.25)


def _log_files(env: dict[str, str], url: str) -> list[str]:
    """The prediction log's files of the model, read with the team's credentials."""
    import s3fs

    fs = s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=env["AWS_ENDPOINT_URL"],
        skip_instance_cache=True,
    )
    return list(fs.glob(f"{url.removeprefix('s3://')}/{NAME}/date=*/*.parquet"))


def test_two_machines_share_only_the_store_urls(team_env: dict[str, str], tmp_path: Path) -> None:
    env = team_env
    a, b = _folder(tmp_path, "a"), _folder(tmp_path, "b")

    # Machine A trains twice (the second time on more data): two versions in the registry.
    data(1).to_parquet(a / "data.parquet", index=False)
    _cli(env, a, "run")
    first, more = data(1), data(2, 600)
    for name in FEATURES:  # within the frozen contract's ranges: no validation warnings
        more[name] = more[name].clip(first[name].min(), first[name].max())
    pd.concat([first, more]).to_parquet(a / "data.parquet", index=False)
    _cli(env, a, "run", "--force")
    listed = json.loads(_cli(env, b, "models", "list", "--json"))[NAME]
    assert sorted(v["version"] for v in listed) == [1, 2], listed
    assert not (b / ".mlcycle" / "mlcycle.db").exists()  # B's metadata is PostgreSQL's
    champion = next(v["version"] for v in listed if "champion" in v["aliases"])
    other = 1 if champion == 2 else 2

    server_a = Server(env, a)
    server_b = None
    try:
        # A's server answers traffic: its prediction log goes to the bucket.
        traffic = data(3, 200)[[*FEATURES, "rid"]]
        answered = server_a.predict(traffic)
        assert answered["model_version"] == champion

        # Machine B serves the champion it never trained, from the bucket.
        server_b = Server(env, b)
        assert server_b.version() == champion
        one = server_b.predict(traffic.iloc[:1])
        assert one["predictions"] == answered["predictions"][:1]
        server_b.stop()

        # B scores a batch into the bucket.
        batch = b / "batch.parquet"
        data(4, 300)[[*FEATURES, "rid"]].to_parquet(batch, index=False)
        scored_url = env["MLCYCLE_ARTIFACTS_URL"].replace("/mlcycle", "/scored/batch.parquet")
        result = json.loads(
            _cli(
                env, b, "predict", f"{NAME}@champion", "-i", str(batch), "-o", scored_url, "--json"
            )
        )
        assert result["output"] == scored_url and result["predicted"] == 300

        # B monitors the log A's server wrote (A flushes it every second).
        log = f"{env['MLCYCLE_ARTIFACTS_URL']}/predictions"
        _until(lambda: bool(_log_files(env, log)), 60, "A's server to write its log", server_a)
        seen = json.loads(_cli(env, b, "monitor", "run", "--json"))
        assert seen["model"] == NAME and seen["new_files"] >= 1 and seen["windows"] >= 1, seen

        # B promotes the other version; A's running server swaps it in.
        _cli(env, b, "models", "promote", NAME, str(other), "--force", "--reason", "team test")
        _until(
            lambda: server_a.version() == other, 60, "A's server to pick up the promotion", server_a
        )
        assert server_a.predict(traffic.iloc[:5])["model_version"] == other
    finally:
        server_a.stop()
        if server_b is not None:
            server_b.stop()
    assert not (b / ".mlcycle" / "artifacts").exists()  # B's artifacts came from the bucket
