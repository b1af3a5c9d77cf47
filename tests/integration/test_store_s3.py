"""The store's artifacts and the prediction log on a real S3 API (moto's server on loopback).

Buckets, multipart uploads, listing, and the ways object storage fails: a
missing bucket, unknown credentials, a refused write, an unreachable
endpoint, no s3fs installed. Each failure is one clear error naming the URL;
nothing half-written becomes visible, and a retry after the fix succeeds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import s3fs
import yaml

from loop_fixtures import data, spec
from mlcycle import predlog
from mlcycle.errors import BadInput, StorageUnavailable
from mlcycle.store import Store
from mlcycle.store.blobs import hash_dir
from mlcycle.store.remote import filesystem, redact
from s3_fixtures import Restricted, process_env

pytestmark = pytest.mark.s3

PART = 5 * 2**20  # S3's smallest part
BIG = 2 * PART + 2**20  # s3fs uploads in parts from two parts' worth: here three


def _open(base: Path, artifacts_url: str) -> Store:
    return Store.open(base, url=f"sqlite:///{base / 'meta.db'}", artifacts_url=artifacts_url)


def _fill(folder: Path, big: int = 0) -> None:
    (folder / "small.txt").write_text("hello")
    (folder / "sub").mkdir()
    (folder / "sub" / "nested.json").write_text("{}")
    if big:
        (folder / "big.bin").write_bytes(np.random.default_rng(0).bytes(big))


def test_artifacts_upload_in_parts_and_read_back_elsewhere(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The part size comes from fsspec's own config for s3 (FSSPEC_S3 in the environment).
    monkeypatch.setitem(fsspec.config.conf, "s3", {"default_block_size": PART})
    url = f"{s3_bucket}/team/art"
    writer = _open(tmp_path / "a", url)
    with writer.staging() as folder:
        _fill(folder, big=BIG)  # a multipart upload
        artifact = writer.put(folder, kind="note", record={"text": "hi"})
    fs, root = filesystem(url)
    big = fs.info(f"{root}/{artifact[:2]}/{artifact}/big.bin")
    assert str(big["ETag"]).strip('"').endswith("-3")  # S3's mark of a 3-part upload
    # Another machine: its own folder and database file, the same bucket.
    reader = Store.open(
        tmp_path / "b", url=f"sqlite:///{tmp_path / 'a' / 'meta.db'}", artifacts_url=url
    )
    local = reader.path(artifact)
    assert local.is_relative_to(tmp_path / "b")
    assert hash_dir(local)[0] == artifact
    assert (local / "big.bin").stat().st_size == BIG
    assert reader.has(artifact) and reader.record(artifact)["text"] == "hi"
    # The same content again is the same artifact, not a second upload.
    with writer.staging() as folder:
        _fill(folder, big=BIG)
        assert writer.put(folder, kind="note", record={"text": "hi"}) == artifact


def test_prediction_log_on_s3_is_written_listed_and_read(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLCYCLE_ARTIFACTS_URL", f"{s3_bucket}/ml")
    root = predlog.predictions_root(tmp_path / ".mlcycle")
    assert root == f"{s3_bucket}/ml/predictions"  # team mode: the log lives with the artifacts
    frame = pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3"],
            "ts": pd.to_datetime(["2024-05-01T10:00", "2024-05-01T11:00", "2024-05-02T09:00"]),
            "model": "m",
            "model_version": 1,
            "role": "champion",
            "x": [1.0, 2.0, 3.0],
            "row_id": ["a", "b", "c"],
            "prediction": ["yes", "no", "yes"],
        }
    )
    written = predlog.write_predictions(root, "m", frame)
    assert len(written) == 2
    files = predlog.list_files(root, "m")
    assert [f.split("/")[-2] for f in files] == ["date=2024-05-01", "date=2024-05-02"]
    assert not any("/." in f for f in files)  # no temporary file left behind
    back = predlog.read_files(root, files, columns=["request_id", "x"])
    assert back["request_id"].tolist() == ["r1", "r2", "r3"]
    # A file another machine adds afterwards is listed: this process's S3 client must not
    # answer from the listing it cached above.
    other_machine = s3fs.S3FileSystem(skip_instance_cache=True)
    late = files[0].rsplit("/", 1)[0] + "/late.parquet"
    other_machine.pipe(late, other_machine.cat(files[0]))
    assert predlog.list_files(root, "m")[1] == late


def test_a_missing_bucket_is_named_and_a_retry_after_creating_it_works(
    s3_env: str, tmp_path: Path
) -> None:
    name = f"mlcycle-missing-{os.getpid()}-{tmp_path.name[-8:]}".lower()
    url = f"s3://{name}/art"
    with pytest.raises(StorageUnavailable) as caught:
        _open(tmp_path, url)
    message = caught.value.message
    assert url in message and "does not exist" in message and f"s3://{name}" in caught.value.fix
    fs = fsspec.filesystem("s3")
    fs.mkdir(name)
    store = _open(tmp_path, url)
    with store.staging() as folder:
        _fill(folder)
        artifact = store.put(folder, kind="note", record={})
    assert store.has(artifact)


def test_unknown_credentials_and_a_refused_write(
    s3_bucket: str, s3_restricted: Restricted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{s3_bucket}/readonly/art"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(StorageUnavailable) as caught:
        _open(tmp_path / "x", url)
    assert url in caught.value.message and "access denied" in caught.value.why
    assert "AWS_ACCESS_KEY_ID" in caught.value.fix

    s3fs.S3FileSystem.clear_instance_cache()  # keys from the environment are not its cache key
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_restricted.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_restricted.secret)
    store = _open(tmp_path / "y", url)  # reading is allowed: opening works
    with store.staging() as folder:
        _fill(folder)
        with pytest.raises(StorageUnavailable) as refused:
            store.put(folder, kind="note", record={})
    assert refused.value.message.startswith(f"cannot write an artifact to {url}")
    assert "access denied" in refused.value.why and "policy" in refused.value.fix
    # Nothing visible: neither the files as an artifact nor a database row.
    fs, root = filesystem(url)
    assert not fs.exists(root) or not fs.find(root)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM artifacts").scalar() == 0

    s3_restricted.allow_all()  # the administrator fixes the policy; the same put succeeds
    with store.staging() as folder:
        _fill(folder)
        artifact = store.put(folder, kind="note", record={})
    assert store.has(artifact) and fs.exists(f"{root}/{artifact[:2]}/{artifact}/_COMPLETE")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_an_unreachable_endpoint_is_named(
    s3_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StorageUnavailable) as caught:
        _open(tmp_path, "s3://any-bucket/art")
    assert "s3://any-bucket/art" in caught.value.message
    assert endpoint in caught.value.why and "AWS_ENDPOINT_URL" in caught.value.fix


def test_credentials_in_a_url_are_redacted() -> None:
    assert redact("s3://AKIA:s3cret@bucket/p") == "s3://***@bucket/p"
    assert redact("s3://bucket/p?secret_key=abc&x=1") == "s3://bucket/p?secret_key=***&x=1"
    assert redact("/plain/path") == "/plain/path"


def test_without_s3fs_the_error_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # `import s3fs` now fails
    # fsspec keeps the classes it imported once: forget S3's.
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    with pytest.raises(BadInput) as caught:
        filesystem("s3://bucket/art")
    assert "s3fs" in caught.value.why and "mlcycle[s3]" in caught.value.fix


def test_mlcycle_run_without_s3fs_is_exit_2_not_an_internal_error(tmp_path: Path) -> None:
    """The issue's report: `mlcycle run` with an s3:// artifacts URL and no s3fs installed."""
    data(1, 200).to_parquet(tmp_path / "data.parquet", index=False)
    (tmp_path / "mlcycle.yaml").write_text(yaml.safe_dump(spec()))
    no_s3fs = (
        "import sys; sys.modules['s3fs'] = None; sys.argv = ['mlcycle', 'run'];"
        "from mlcycle.cli.main import main; main()"
    )
    env = process_env(
        "http://127.0.0.1:9",
        tmp_path,
        MLCYCLE_ARTIFACTS_URL="s3://team/art",
        MLCYCLE_STORE_URL=f"sqlite:///{tmp_path / 'meta.db'}",
    )
    done = subprocess.run(
        [sys.executable, "-c", no_s3fs],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    line = " ".join(done.stderr.split())
    assert "cannot use s3://team/art" in line and "pip install 'mlcycle[s3]'" in line
    assert "internal error" not in line and "Traceback" not in done.stderr


def test_an_unreachable_database_is_one_line_with_the_password_redacted(tmp_path: Path) -> None:
    (tmp_path / "mlcycle.yaml").write_text(yaml.safe_dump(spec()))
    url = f"postgresql://team:s3cret@127.0.0.1:{_closed_port()}/mlcycle"
    env = process_env("http://127.0.0.1:9", tmp_path, MLCYCLE_STORE_URL=url)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlcycle"), "models", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    line = " ".join(done.stderr.split())
    assert line.startswith("mlcycle: cannot open the metadata store at postgresql")
    assert "team:***@127.0.0.1" in line and "s3cret" not in line
    assert "MLCYCLE_STORE_URL" in line and "Traceback" not in done.stderr


def test_prediction_lineage_without_s3fs_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `mlcycle lineage prediction:…` reads the log where the artifacts are: the same clear
    # error as the store's, not an internal error from fsspec's import.
    from mlcycle.store.prediction_rows import find_logged_rows

    monkeypatch.setitem(sys.modules, "s3fs", None)
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    with pytest.raises(BadInput) as caught:
        find_logged_rows("s3://bucket/art/predictions", "3f2a9c0e4b1d")
    assert "s3fs" in caught.value.why and "mlcycle[s3]" in caught.value.fix
