"""The sqlite3 registry lookup agrees with the registry, and steps aside when unsure.

`mlcycle predict` resolves ``flights@champion`` in a local project without
SQLAlchemy (``mlcycle.local_store.lookup_bundle``); whatever it answers must be
what ``Registry.bundle`` answers, and whatever it cannot settle it must leave
to the registry (``None``), which names the problem.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle.local_store import lookup_bundle
from mlcycle.registry import Registry
from mlcycle.store import Store


def _bundle(store: Store, text: str) -> str:
    with store.staging() as folder:
        (folder / "meta.json").write_text(text)
        return store.put(folder, kind="bundle", record={"name": text})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLCYCLE_STORE_URL", raising=False)
    monkeypatch.delenv("MLCYCLE_ARTIFACTS_URL", raising=False)
    store = Store.open(tmp_path)  # the default layout: .mlcycle/mlcycle.db and artifacts/
    reg = Registry(store)
    for name in ("flights", "churn"):
        for text in ("one", "two"):
            reg.register(name, _bundle(store, f"{name}-{text}"), blessed=True)
    reg.promote("flights", 2, reason="better")
    reg.promote("churn", 1, reason="first")
    reg.set_alias("flights", "challenger", 1, reason="shadow")
    store.close()
    return tmp_path


@pytest.mark.parametrize(
    "ref",
    ["flights@champion", "models:/flights@champion", "flights", "flights/1", "models:/churn/2",
     "flights@challenger", "churn"],
)  # fmt: skip
def test_the_lookup_answers_what_the_registry_answers(project: Path, ref: str) -> None:
    found = lookup_bundle(project, ref)
    store = Store.open(project)
    resolved = Registry(store).resolve(ref)
    folder = store.path(resolved.bundle_id)
    store.close()
    assert found is not None
    assert (found.name, found.version, found.bundle_id) == (
        resolved.name,
        resolved.version,
        resolved.bundle_id,
    )
    assert found.folder == folder


@pytest.mark.parametrize(
    "ref",
    ["nosuch@champion", "flights@canary", "flights/9", "not a ref", "churn@challenger",
     "flights/99999999999999999999", "flights/0"],
)  # fmt: skip
def test_what_the_lookup_cannot_settle_goes_to_the_registry(project: Path, ref: str) -> None:
    assert lookup_bundle(project, ref) is None


def test_another_store_or_no_database_goes_to_the_registry(
    project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lookup_bundle(tmp_path_factory.mktemp("empty"), "flights") is None
    monkeypatch.setenv("MLCYCLE_STORE_URL", "postgresql://nowhere/db")
    assert lookup_bundle(project, "flights") is None
    monkeypatch.delenv("MLCYCLE_STORE_URL")
    monkeypatch.setenv("MLCYCLE_ARTIFACTS_URL", "s3://bucket/artifacts")
    assert lookup_bundle(project, "flights") is None


def test_a_missing_folder_goes_to_the_registry(project: Path) -> None:
    found = lookup_bundle(project, "flights")
    assert found is not None
    found.folder.rename(found.folder.with_name("moved"))
    assert lookup_bundle(project, "flights") is None


def test_predict_without_log_resolves_without_sqlalchemy(tmp_path: Path) -> None:
    # The whole path a user types: a registered bundle scored by reference, in a fresh
    # process that never imports SQLAlchemy (nor the store, nor the spec's models).
    import shutil

    sys.path.insert(0, str(Path(__file__).parent))
    from serve_fixtures import build_bundle, cli_in_fresh_process, flights_frame

    bundle_src = build_bundle(tmp_path / "src", encoder="ordinal")
    store = Store.open(tmp_path)
    with store.staging() as folder:
        for item in bundle_src.iterdir():
            shutil.copy(item, folder / item.name)
        bundle_id = store.put(folder, kind="bundle", record={"name": "flights"})
    reg = Registry(store)
    reg.promote("flights", reg.register("flights", bundle_id, blessed=True), reason="first")
    store.close()
    (tmp_path / "mlcycle.yaml").write_text("project: flights\n")  # its folder is all that counts
    source = tmp_path / "in.parquet"
    flights_frame(50, seed=1).to_parquet(source)
    out = tmp_path / "out.parquet"
    stdout, heavy = cli_in_fresh_process(
        ["predict", "flights@champion", "-i", str(source), "-o", str(out), "--json",
         "--spec", str(tmp_path / "mlcycle.yaml")],
        ("sqlalchemy", "alembic", "mlcycle.store", "mlcycle.spec", "mlcycle.pipeline"),
    )  # fmt: skip
    assert heavy == []
    assert json.loads(stdout)["rows"] == 50
    # A changed bundle is still refused before anything in it is read.
    meta = Path(store.blobs.path(bundle_id)) / "meta.json"
    meta.write_text(meta.read_text().replace('"flights"', '"flights" '))
    done = subprocess.run(
        [str(Path(sys.executable).with_name("mlcycle")), "predict", "flights@champion", "-i",
         str(source), "-o", str(tmp_path / "again.parquet"), "--spec",
         str(tmp_path / "mlcycle.yaml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "changed after it was registered" in done.stderr
