"""A bundle is checked against its content id before anything in it is unpickled.

Unpickling ``model.joblib`` runs code, so a bundle changed after it was
registered (one byte appended, or a pickle whose ``__reduce__`` runs a shell
command) must be refused — with an ``mlcycle:`` error naming the bundle —
before it is loaded: by the registry accessor, the CLI, serving's loader and
the hot-swap path.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from serve_fixtures import build_bundle, flights_frame
from serve_fixtures import restore_gc as restore_gc  # autouse: undo the app's GC settings

from mlcycle.bundle import Bundle
from mlcycle.errors import BadInput
from mlcycle.registry.models import Registry, ResolvedVersion
from mlcycle.serve import ModelRuntime
from mlcycle.serve.http.deploy import Deployment, Swapper
from mlcycle.store import Store


class _Evil:
    """Unpickling it runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("tpl") / "bundle", n=600)


@dataclass
class Registered:
    store: Store
    registry: Registry
    bundle_id: str
    folder: Path


def _register(store: Store, template: Path, seed: str = "a") -> tuple[str, Path]:
    with store.staging() as staging:
        shutil.copytree(template, staging, dirs_exist_ok=True)
        bundle_id = store.put(staging, kind="bundle", record={"seed": seed})
    return bundle_id, store.path(bundle_id)


@pytest.fixture
def registered(store: Store, template: Path) -> Registered:
    registry = Registry(store)
    bundle_id, folder = _register(store, template)
    version = registry.register("flights", bundle_id, blessed=True)
    registry.set_alias("flights", "champion", version, reason="test")
    return Registered(store, registry, bundle_id, folder)


def _append_byte(folder: Path) -> None:
    with Bundle(folder).model_path.open("ab") as fh:
        fh.write(b"\0")


def _plant_evil(folder: Path, marker: Path) -> None:
    joblib.dump(_Evil(marker), Bundle(folder).model_path)


def test_untouched_bundle_verifies_and_loads(registered: Registered) -> None:
    resolved, bundle = registered.registry.bundle("models:/flights@champion")
    assert bundle.verify_addressed() == registered.bundle_id
    runtime = ModelRuntime.load(bundle.folder, resolved.version, bundle_id=resolved.bundle_id)
    assert runtime.meta.name == "flights"


def test_registry_bundle_refuses_an_appended_byte(registered: Registered) -> None:
    _append_byte(registered.folder)
    with pytest.raises(BadInput) as exc:
        registered.registry.bundle("models:/flights@champion")
    assert str(registered.folder) in str(exc.value)
    assert "changed after it was registered" in str(exc.value)


def test_runtime_refuses_a_store_folder_with_a_planted_pickle(
    registered: Registered, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    _plant_evil(registered.folder, marker)
    with pytest.raises(BadInput, match="changed after it was registered"):
        ModelRuntime.load(registered.folder, 1)
    assert not marker.exists(), "the pickle ran before the bundle was verified"


def test_runtime_checks_an_explicit_id_whatever_the_folder_name(
    registered: Registered, tmp_path: Path
) -> None:
    copy = shutil.copytree(registered.folder, tmp_path / "renamed")
    _append_byte(copy)
    with pytest.raises(BadInput, match="changed after it was registered"):
        ModelRuntime.load(copy, 1, bundle_id=registered.bundle_id)


def test_plain_folder_is_trusted_as_given(template: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(template, tmp_path / "my-bundle")
    _append_byte(folder)  # joblib ignores trailing bytes: nothing to check it against
    assert Bundle(folder).verify_addressed() is None
    assert ModelRuntime.load(folder, warmup=False).meta.name == "flights"


def test_hot_swap_refuses_a_tampered_version_and_keeps_serving(
    registered: Registered, template: Path, tmp_path: Path
) -> None:
    _, new_folder = _register(registered.store, template, seed="b")
    marker = tmp_path / "pwned"
    _plant_evil(new_folder, marker)
    runtime = ModelRuntime.load(registered.folder, 1, warmup=False)
    swapper = Swapper(Deployment.start(runtime), resolver=lambda role: (2, new_folder))
    with pytest.raises(BadInput, match="changed after it was registered"):
        swapper.check()
    assert not marker.exists()
    assert swapper.deployment.champion.runtime is runtime


class _Project:
    """Just what ``cli.serve.resolve_bundle`` uses of a Project."""

    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry, self.store = registry, store

    def bundle(self, ref: str) -> tuple[ResolvedVersion, Path]:
        resolved = self.registry.resolve(ref)
        return resolved, self.store.path(resolved.bundle_id)


def test_cli_resolution_verifies_a_model_reference(
    registered: Registered, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mlcycle.cli import common
    from mlcycle.cli.serve import resolve_bundle

    monkeypatch.setattr(
        common, "load_project", lambda spec: _Project(registered.registry, registered.store)
    )
    folder, version, _ = resolve_bundle("models:/flights@champion", tmp_path / "mlcycle.yaml")
    assert (folder, version) == (registered.folder, 1)
    marker = tmp_path / "pwned"
    _plant_evil(registered.folder, marker)
    with pytest.raises(BadInput, match="changed after it was registered"):
        resolve_bundle("models:/flights@champion", tmp_path / "mlcycle.yaml")
    assert not marker.exists()


def test_cli_predict_refuses_a_tampered_store_folder(
    registered: Registered, tmp_path: Path
) -> None:
    from mlcycle.cli.main import app

    marker = tmp_path / "pwned"
    _plant_evil(registered.folder, marker)
    data = tmp_path / "in.parquet"
    flights_frame(20).to_parquet(data)
    out = tmp_path / "out.parquet"
    done = CliRunner().invoke(
        app, ["predict", str(registered.folder), "-i", str(data), "-o", str(out)]
    )
    assert done.exit_code == 2, done.output
    assert "mlcycle:" in done.output and "changed after it was registered" in done.output
    assert not marker.exists() and not out.exists()


def test_verifying_costs_tens_of_ms_at_most(registered: Registered) -> None:
    bundle = Bundle(registered.folder)
    started = time.perf_counter()
    bundle.verify(registered.bundle_id)
    assert time.perf_counter() - started < 1.0


# --- a bundle's name never becomes a path outside its root --------------------------------


def test_runtime_refuses_a_bundle_whose_name_escapes(template: Path, tmp_path: Path) -> None:
    import json

    folder = shutil.copytree(template, tmp_path / "bundle")
    meta_path = Bundle(folder).meta_path
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "name": "../../escaped"}))
    with pytest.raises(BadInput) as exc:
        ModelRuntime.load(folder, warmup=False)
    assert "'../../escaped'" in str(exc.value) and str(meta_path) in str(exc.value)


def test_registry_refuses_a_name_that_is_not_one_folder(store: Store, template: Path) -> None:
    bundle_id, _ = _register(store, template)
    registry = Registry(store)
    for name in ("../../escaped", "a/b", ".x"):
        with pytest.raises(BadInput, match="is not allowed"):
            registry.register(name, bundle_id, blessed=True)
    assert registry.models() == []
