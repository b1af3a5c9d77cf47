"""The store on a real database: artifacts, lineage, atomic commits, migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mlcycle.errors import BadInput, NotFound
from mlcycle.store import Store, schema_heads
from mlcycle.store import tables as t


def _put(store: Store, text: str, parents: dict[str, str] | None = None) -> str:
    with store.staging() as folder:
        (folder / "payload.txt").write_text(text)
        return store.put(folder, kind="note", record={"name": text}, parents=parents)


def test_same_content_same_id_and_one_row(store: Store) -> None:
    first = _put(store, "alpha")
    second = _put(store, "alpha")
    assert first == second
    assert len(first) == 64
    with store.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(t.artifacts)).scalar()
    assert count == 1
    assert (store.path(first) / "payload.txt").read_text() == "alpha"
    assert store.record(first) == {"name": "alpha"}


def test_a_committed_artifact_is_as_readable_as_a_folder_the_user_makes(
    store: Store, tmp_path: Path
) -> None:
    # A staging folder is owner-only (mkdtemp); a serving image's user reads bundles
    # another user wrote, so the artifact gets the mode mkdir gives under the umask.
    artifact = _put(store, "shared")
    made = tmp_path / "made-by-mkdir"
    made.mkdir()
    assert store.path(artifact).stat().st_mode & 0o777 == made.stat().st_mode & 0o777


def test_subfolders_swapped_in_by_a_writer_are_readable_too(store: Store, tmp_path: Path) -> None:
    # A bundle's onnx/ and native/ are written atomically through a mkdtemp folder
    # (owner-only) that is renamed into place; the store opens them up on commit.
    import tempfile

    with store.staging() as folder:
        inner = Path(tempfile.mkdtemp(dir=folder))
        (inner / "model.so").write_text("x")
        inner.rename(folder / "native")
        artifact = store.put(folder, kind="note", record={"name": "sub"})
    made = tmp_path / "made-by-mkdir"
    made.mkdir()
    assert (store.path(artifact) / "native").stat().st_mode & 0o777 == made.stat().st_mode & 0o777


def test_lineage_walks_to_the_roots(store: Store) -> None:
    data = _put(store, "data")
    model = _put(store, "model", {"dataset": data})
    bundle = _put(store, "bundle", {"model": model, "dataset": data})
    tree = store.lineage(bundle)
    roles = sorted(child["role"] for child in tree["inputs"])
    assert roles == ["dataset", "model"]
    model_node = next(c for c in tree["inputs"] if c["role"] == "model")
    assert model_node["inputs"][0]["id"] == data
    assert store.parents(model) == [("dataset", data, "note")]


def test_staging_folder_is_removed_when_the_writer_fails(store: Store) -> None:
    staged: list[Path] = []
    with pytest.raises(RuntimeError), store.staging() as folder:
        staged.append(folder)
        (folder / "half.txt").write_text("half")
        raise RuntimeError("crash mid-write")
    assert not staged[0].exists()
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.artifacts)).scalar() == 0


def test_has_is_false_when_files_are_gone(store: Store) -> None:
    artifact = _put(store, "gone")
    assert store.has(artifact)
    import shutil

    shutil.rmtree(store.path(artifact))
    assert not store.has(artifact)
    with pytest.raises(NotFound):
        store.path(artifact)


def test_resolve_prefix(store: Store) -> None:
    artifact = _put(store, "prefix")
    assert store.resolve(artifact[:8]) == artifact
    with pytest.raises(BadInput):
        store.resolve("abc")
    with pytest.raises(NotFound):
        store.resolve("0" * 10 if not artifact.startswith("0" * 10) else "f" * 10)


def test_reopening_runs_no_migration_and_keeps_data(store_url: str, tmp_path: Path) -> None:
    first = Store.open(tmp_path, url=store_url, artifacts_url=str(tmp_path / "a"))
    artifact = _put(first, "kept")
    first.close()
    second = Store.open(tmp_path, url=store_url, artifacts_url=str(tmp_path / "a"))
    assert second.record(artifact) == {"name": "kept"}
    with second.engine.connect() as conn:
        applied = {r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
    assert applied == set(schema_heads())
    second.close()


def test_sqlite_store_uses_wal(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / ".mlcycle" / "mlcycle.db").is_file()
    store.close()


def test_bad_store_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="store"):
        Store.open(tmp_path, url="nosuchdb://x")


def test_artifacts_on_an_fsspec_url(tmp_path: Path) -> None:
    # memory:// stands in for object storage: upload + completion marker, no rename.
    store = Store.open(tmp_path, artifacts_url=f"memory://mlcycle-{tmp_path.name}")
    artifact = _put(store, "remote")
    assert store.has(artifact)
    assert (store.path(artifact) / "payload.txt").read_text() == "remote"
    store.close()


def test_a_dirty_git_sha_fits(store: Store) -> None:
    # Project.git_sha is "<40 hex>-dirty" in a repository with uncommitted changes.
    sha = "0123456789abcdef0123456789abcdef01234567-dirty"
    with store.engine.begin() as conn:
        conn.execute(
            t.pipeline_runs.insert().values(
                id="run-1", started_at="now", status="running", spec_hash="x" * 64, git_sha=sha
            )
        )
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(t.pipeline_runs.c.git_sha)).scalar()
    assert stored == sha


def test_volatile_fields_stay_out_of_the_id_but_in_the_record(store: Store) -> None:
    ids = []
    for seconds in (1.5, 2.5):
        with store.staging() as folder:
            (folder / "payload.txt").write_text("same")
            record = {"name": "fit", "took": seconds}
            ids.append(store.put(folder, kind="note", record=record, volatile=("took",)))
    assert ids[0] == ids[1]
    assert store.record(ids[0]) == {"name": "fit", "took": 1.5}  # the first maker's
    assert "took" not in (store.path(ids[0]) / "record.json").read_text()


@pytest.mark.parametrize("prefix", ["______", "%%%%%%", "%_%_%_"])
def test_resolve_treats_like_wildcards_as_characters(store: Store, prefix: str) -> None:
    # Ids are hex: "%" and "_" must match nothing, not stand for any character.
    full = _put(store, "wild")
    with pytest.raises(NotFound):
        store.resolve(prefix)
    assert store.resolve(full[:6]) == full


def test_run_id_prefixes_treat_like_wildcards_as_characters(store: Store) -> None:
    # The tracking runs' resolver builds its LIKE from user text too.
    from mlcycle.train.tracking.query import resolve_run

    with store.engine.begin() as conn:
        conn.execute(
            t.runs.insert().values(
                id="abcdef0123", experiment="e", name="r", status="finished", start_time=0.0
            )
        )
    assert resolve_run(store.engine, "abcd") == "abcdef0123"
    with pytest.raises(NotFound):
        resolve_run(store.engine, "a_c%")


def test_lineage_run_prefixes_treat_like_wildcards_as_characters(store: Store) -> None:
    # `mlcycle lineage RUN_ID_PREFIX` builds its LIKE from user text too.
    from types import SimpleNamespace

    from mlcycle.store.queries import run_by_prefix

    with store.engine.begin() as conn:
        conn.execute(
            t.pipeline_runs.insert().values(
                id="abcdef0123", started_at="2026-01-01", status="done", spec_hash="h"
            )
        )
    project = SimpleNamespace(store=store)
    assert run_by_prefix(project.store, "abcdef")["id"] == "abcdef0123"  # type: ignore[index]
    assert run_by_prefix(project.store, "a_c%%%") is None
