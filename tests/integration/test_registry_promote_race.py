"""Two processes promoting at once through `Registry.promote` (what `mlcycle models
promote` calls): each read the champion, then both write. Exactly one wins, the
history stays consistent. Runs on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlcycle.registry import Registry
from mlcycle.registry.models import AliasConflict
from mlcycle.store import Store
from mlcycle.store import tables as t


def _bundle(store: Store, text: str) -> str:
    with store.staging() as folder:
        (folder / "meta.json").write_text(text)
        return store.put(folder, kind="bundle", record={"name": text})


def _promote_after_reading(url: str, root: str, version: int, barrier: Any, out: Any) -> None:
    store = Store.open(Path(root), url=url, artifacts_url=str(Path(root) / "artifacts"))
    try:
        registry = Registry(store)
        seen = registry.alias_version("m", "champion")  # what the CLI shows the user
        barrier.wait(timeout=60)  # both have read before either writes
        registry.promote("m", version, reason=f"race {version}", expected=seen)
        out.put((version, "won"))
    except AliasConflict:
        out.put((version, "lost"))
    except Exception as exc:  # a lock or driver error would surface here
        out.put((version, f"error: {type(exc).__name__}: {exc}"))
    finally:
        store.close()


def test_concurrent_promotions_exactly_one_wins(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    reg = Registry(store)
    versions = [reg.register("m", _bundle(store, f"b{i}"), blessed=True) for i in range(3)]
    reg.promote("m", versions[0], reason="first")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_promote_after_reading, args=(store_url, str(tmp_path), v, barrier, out))
        for v in versions[1:]
    ]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert sorted(results.values()) == ["lost", "won"], results
    winner = next(v for v, r in results.items() if r == "won")
    events = reg.history("m")
    assert [(e["from_version"], e["to_version"]) for e in events] == [
        (None, versions[0]),
        (versions[0], winner),
    ]
    assert reg.resolve("m@champion").version == winner


def test_stacked_rollbacks_walk_back_and_promote_checks_the_alias(store: Store) -> None:
    reg = Registry(store)
    v = [reg.register("m", _bundle(store, f"s{i}"), blessed=True) for i in range(3)]
    for version in v:
        reg.promote("m", version, reason=f"v{version}")
    assert reg.rollback("m") == (v[2], v[1])
    assert reg.rollback("m") == (v[1], v[0])  # a stack: not back to v3
    events = reg.history("m")
    assert [e["action"] for e in events] == ["promote"] * 3 + ["rollback"] * 2
    try:
        reg.promote("m", v[1], expected=v[2])
    except AliasConflict as exc:
        assert "moved meanwhile" in exc.what
    else:
        raise AssertionError("a promotion based on a stale read must fail")
    assert reg.resolve("m@champion").version == v[0]


def test_the_alias_log_is_append_only_in_the_database(store: Store) -> None:
    reg = Registry(store)
    reg.promote("m", reg.register("m", _bundle(store, "log"), blessed=True), reason="first")
    for statement in (
        t.alias_events.update().values(reason="rewritten"),
        t.alias_events.delete(),
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(statement)
    assert [e["reason"] for e in reg.history("m")] == ["first"]


def test_a_promotion_that_loses_the_race_exits_2_with_a_clear_message(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Exit 1 is for internal failures (README); a lost race is the user's to retry.
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from mlcycle.cli import models as models_cli
    from mlcycle.cli.main import app

    reg = Registry(store)
    v = [reg.register("m", _bundle(store, f"cli{i}"), blessed=True) for i in range(2)]
    reg.promote("m", v[0], reason="first")
    monkeypatch.setattr(models_cli, "load_project", lambda spec: SimpleNamespace(registry=reg))
    # What the command read before another process moved the alias: nothing yet.
    monkeypatch.setattr(Registry, "alias_version", lambda self, name, alias: None)
    result = CliRunner().invoke(app, ["models", "promote", "m", str(v[1])])
    assert result.exit_code == 2, result.output
    assert "mlcycle: alias m@champion moved meanwhile" in result.output
    assert "Traceback" not in result.output
    monkeypatch.undo()
    assert reg.resolve("m@champion").version == v[0]  # nothing changed
