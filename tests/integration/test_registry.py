"""Registry on a real database: versions, aliases, audit log, rollback, races."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from mlcycle.errors import BadInput, NotFound
from mlcycle.registry import Registry
from mlcycle.registry.models import AliasConflict
from mlcycle.store import Store


def _bundle(store: Store, text: str) -> str:
    with store.staging() as folder:
        (folder / "meta.json").write_text(text)
        return store.put(folder, kind="bundle", record={"name": text})


def test_versions_are_numbered_and_registration_is_idempotent(store: Store) -> None:
    reg = Registry(store)
    a, b = _bundle(store, "a"), _bundle(store, "b")
    assert reg.register("m", a, blessed=True) == 1
    assert reg.register("m", b, blessed=False) == 2
    assert reg.register("m", a, blessed=True) == 1
    assert [v.version for v in reg.versions("m")] == [1, 2]


def test_promote_resolve_history_and_rollback(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCYCLE_ACTOR", "alice")
    reg = Registry(store)
    v1 = reg.register("m", _bundle(store, "1"), blessed=True)
    v2 = reg.register("m", _bundle(store, "2"), blessed=True)
    reg.promote("m", v1, reason="first")
    assert reg.promote("m", v2, reason="better") == v1
    assert reg.resolve("models:/m@champion").version == v2
    assert reg.resolve("m").version == v2
    assert reg.resolve("m/1").version == 1
    assert reg.rollback("m", reason="regression") == (v2, v1)
    assert reg.resolve("m@champion").version == v1
    events = reg.history("m")
    assert [(e["from_version"], e["to_version"]) for e in events] == [(None, 1), (1, 2), (2, 1)]
    assert {e["actor"] for e in events} == {"alice"}
    assert events[-1]["reason"] == "regression"


@pytest.mark.parametrize("version", [2**31, 10**20, 0, -1])
def test_a_version_no_registry_can_hold_is_not_found(store: Store, version: int) -> None:
    # Typed by a user (a reference, `models promote`, a dashboard URL): it must be a
    # clear "no such version", not the database refusing the number (an internal error).
    reg = Registry(store)
    reg.promote("m", reg.register("m", _bundle(store, "1"), blessed=True), reason="first")
    with pytest.raises(NotFound, match=f"model 'm' has no version {version}"):
        reg.promote("m", version, reason="x")
    if version >= 0:  # a reference spells only digits
        with pytest.raises(NotFound, match=f"model 'm' has no version {version}"):
            reg.resolve(f"m/{version}")


def test_unblessed_needs_force_and_reason(store: Store) -> None:
    reg = Registry(store)
    v = reg.register("m", _bundle(store, "x"), blessed=False)
    with pytest.raises(BadInput, match="did not pass the gate"):
        reg.promote("m", v)
    with pytest.raises(BadInput, match="--reason"):
        reg.promote("m", v, force=True)
    reg.promote("m", v, force=True, reason="hotfix")
    assert reg.history("m")[-1]["forced"] is True


def test_bad_references(store: Store) -> None:
    reg = Registry(store)
    with pytest.raises(NotFound, match="no registered model"):
        reg.resolve("models:/ghost@champion")
    reg.register("m", _bundle(store, "y"), blessed=True)
    with pytest.raises(NotFound, match="no alias"):
        reg.resolve("m@champion")
    with pytest.raises(NotFound, match="no version 9"):
        reg.resolve("m/9")
    with pytest.raises(BadInput, match="not a model reference"):
        reg.resolve("models:/m@@x")
    with pytest.raises(BadInput, match="invalid alias"):
        reg.set_alias("m", "Bad Alias", 1, reason="")
    with pytest.raises(BadInput, match="no earlier version"):
        reg.promote("m", 1)
        reg.rollback("m")


def test_compare_and_set_refuses_a_stale_move(store: Store) -> None:
    reg = Registry(store)
    v1 = reg.register("m", _bundle(store, "p"), blessed=True)
    v2 = reg.register("m", _bundle(store, "q"), blessed=True)
    reg.promote("m", v1)
    with pytest.raises(AliasConflict):
        reg.set_alias("m", "champion", v2, reason="stale", expected=None)
    assert reg.resolve("m@champion").version == v1


def _promote_in_child(args: tuple[str, str, int, int]) -> str:
    url, root, version, expected = args
    store = Store.open(Path(root), url=url, artifacts_url=str(Path(root) / "artifacts"))
    try:
        Registry(store).set_alias(
            "m", "champion", version, reason=f"race {version}", expected=expected
        )
        return "won"
    except AliasConflict:
        return "lost"
    except Exception as exc:  # a lock error would show up here
        return f"error: {type(exc).__name__}: {exc}"
    finally:
        store.close()


def test_two_processes_promoting_at_once_exactly_one_wins(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    reg = Registry(store)
    v1 = reg.register("m", _bundle(store, "r1"), blessed=True)
    v2 = reg.register("m", _bundle(store, "r2"), blessed=True)
    v3 = reg.register("m", _bundle(store, "r3"), blessed=True)
    reg.promote("m", v1)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(
            _promote_in_child,
            [(store_url, str(tmp_path), v2, v1), (store_url, str(tmp_path), v3, v1)],
        )
    assert sorted(results) == ["lost", "won"], results
    events = reg.history("m")
    assert len(events) == 2
    assert events[-1]["from_version"] == v1
    assert reg.resolve("m@champion").version == events[-1]["to_version"]


def test_unset_alias_removes_it_with_history_and_keeps_the_champion(store: Store) -> None:
    registry = Registry(store)
    bundle_one, bundle_two = _bundle(store, "one"), _bundle(store, "two")
    registry.register("m", bundle_one, blessed=True)
    registry.register("m", bundle_two, blessed=True)
    registry.promote("m", 1, reason="first")
    registry.set_alias("m", "challenger", 2, reason="shadow", actor="loop")
    assert registry.unset_alias("m", "challenger", reason="rejected", actor="loop") == 2
    assert registry.alias_version("m", "challenger") is None
    last = registry.history("m", "challenger")[-1]
    assert (last["from_version"], last["to_version"], last["action"]) == (2, None, "unset")
    assert last["actor"] == "loop"
    assert registry.unset_alias("m", "challenger", reason="again") is None
    with pytest.raises(BadInput):
        registry.unset_alias("m", "champion", reason="no")
    assert registry.alias_version("m", "champion") == 1


def test_promote_and_rollback_record_the_given_actor(store: Store) -> None:
    registry = Registry(store)
    for label in ("one", "two"):
        registry.register("m", _bundle(store, label), blessed=True)
    registry.promote("m", 1, reason="first", actor="ana@ui")
    registry.promote("m", 2, reason="second")
    registry.rollback("m", reason="bad", actor="bob@ui")
    actors = [e["actor"] for e in registry.history("m", "champion")]
    assert actors[0] == "ana@ui" and actors[2] == "bob@ui"
    assert actors[1] not in {"ana@ui", "bob@ui"}
