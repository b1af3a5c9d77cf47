"""Incremental ingest into a real store (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mlcycle.data.build import raw_frame, usable_partitions
from mlcycle.data.ingest import decode_watermark, ingest
from mlcycle.data.landing import RawRoot, list_partitions, quarantine
from mlcycle.errors import BadInput
from mlcycle.spec import Source
from mlcycle.store import Store
from mlcycle.store import tables as t


def _rows(start: int, n: int, day0: str = "2024-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(start)
    return pd.DataFrame(
        {
            "id": np.arange(start, start + n),
            "ts": pd.date_range(day0, periods=n, freq="h", tz="UTC"),
            "x": rng.normal(size=n).round(4),
            "c": rng.choice(["a", "b"], size=n),
        }
    )


def _raw_files(store: Store) -> list[Path]:
    return sorted((store.home / "raw").rglob("*.parquet"))


def test_append_mode_reads_only_new_rows_and_drops_repeated_ids(
    store: Store, tmp_path: Path
) -> None:
    src = Source(path="data.csv", watermark="ts")
    first = _rows(0, 100)
    first.to_csv(tmp_path / "data.csv", index=False)
    r1 = ingest(store, src, tmp_path, id_column="id")
    assert r1.mode == "append" and r1.rows_new == 100 and r1.partition is not None
    assert r1.partition.path.startswith("main/ingested_at=")

    # Unchanged source: nothing is read or landed.
    r2 = ingest(store, src, tmp_path, id_column="id")
    assert r2.partition is None and "unchanged" in r2.note

    # 50 new rows; 5 of them repeat an id already landed (re-delivered rows).
    new = _rows(100, 50, day0="2024-01-10")
    new.loc[:4, "id"] = [0, 1, 2, 3, 4]
    pd.concat([first, new]).to_csv(tmp_path / "data.csv", index=False)
    r3 = ingest(store, src, tmp_path, id_column="id")
    assert r3.rows_read == 150 and r3.rows_new == 45 and r3.duplicates == 5
    assert decode_watermark(r3.watermark_after) == new["ts"].max()
    assert any("already seen" in w for w in r3.warnings)

    parts = list_partitions(store, "main")
    assert [p.rows for p in parts] == [100, 45]
    assert len(_raw_files(store)) == 2
    # The first partition was never rewritten: its file still holds exactly its rows.
    landed = RawRoot(store).read(parts[0])
    assert landed["id"].tolist() == list(range(100))
    _, df = raw_frame(store, src)
    assert len(df) == 145 and df["id"].is_unique


def test_each_ingest_starts_past_the_newest_of_all_earlier_partitions(
    store: Store, tmp_path: Path
) -> None:
    # No id column: the watermark alone keeps already-landed rows out, so the third ingest
    # must start after the second partition's watermark, not the first's.
    src = Source(path="d.parquet", watermark="ts")
    batches = [_rows(i * 10, 10, day0=f"2024-0{i + 1}-01") for i in range(3)]
    results = []
    for i in range(3):
        pd.concat(batches[: i + 1]).to_parquet(tmp_path / "d.parquet")
        results.append(ingest(store, src, tmp_path))
    third = results[2]
    assert third.rows_read == 30 and third.rows_new == 10 and third.partition is not None
    assert decode_watermark(third.watermark_before) == batches[1]["ts"].max()
    assert decode_watermark(third.watermark_after) == batches[2]["ts"].max()
    assert third.partition.watermark_max == third.watermark_after
    assert decode_watermark(third.partition.watermark_min) == batches[2]["ts"].min()

    parts = list_partitions(store, "main")
    assert [p.rows for p in parts] == [10, 10, 10]
    assert RawRoot(store).read(parts[2])["id"].tolist() == list(range(20, 30))
    _, df = raw_frame(store, src)
    assert sorted(df["id"]) == list(range(30))


def test_a_watermark_that_goes_backwards_is_refused(store: Store, tmp_path: Path) -> None:
    src = Source(path="data.parquet", watermark="ts")
    _rows(0, 30, day0="2024-03-01").to_parquet(tmp_path / "data.parquet")
    ingest(store, src, tmp_path, id_column="id")
    _rows(500, 30, day0="2023-01-01").to_parquet(tmp_path / "data.parquet")
    with pytest.raises(BadInput, match="went backwards") as caught:
        ingest(store, src, tmp_path, id_column="id")
    assert "2024-03-02" in caught.value.why
    assert len(list_partitions(store, "main")) == 1 and len(_raw_files(store)) == 1


def test_late_rows_are_counted_and_skipped(store: Store, tmp_path: Path) -> None:
    src = Source(path="data.parquet", watermark="ts")
    base = _rows(0, 30, day0="2024-03-01")
    base.to_parquet(tmp_path / "data.parquet")
    ingest(store, src, tmp_path, id_column="id")
    late = _rows(1000, 3, day0="2024-03-01")  # unseen ids, old timestamps
    newer = _rows(2000, 4, day0="2024-04-01")
    pd.concat([base, late, newer]).to_parquet(tmp_path / "data.parquet")
    result = ingest(store, src, tmp_path, id_column="id")
    assert result.rows_new == 4 and result.late == 3


def test_malformed_csv_lines_error_with_the_line_or_are_skipped_by_policy(
    store: Store, tmp_path: Path
) -> None:
    lines = ["id,ts,x", "1,2024-01-01T00:00:00Z,0.5", "2,2024-01-01T01:00:00Z,0.1,EXTRA"]
    lines += ["3,2024-01-01T02:00:00Z,0.7", "4,2024-01-01T03:00:00Z,"]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    strict = Source(path="d.csv", watermark="ts")
    with pytest.raises(BadInput, match="line 3") as caught:
        ingest(store, strict, tmp_path, id_column="id")
    assert "nothing was landed" in caught.value.why
    assert list_partitions(store, "main") == [] and _raw_files(store) == []

    lenient = Source(path="d.csv", watermark="ts", on_bad_lines="warn")
    result = ingest(store, lenient, tmp_path, id_column="id")
    assert result.rows_new == 3 and result.bad_lines == [3] and result.bad_line_count == 1
    assert list_partitions(store, "main")[0].details["bad_lines"] == [3]


def test_a_failure_part_way_leaves_no_partition_and_no_record(store: Store, tmp_path: Path) -> None:
    # 200,000 good rows (more than one 4 MiB CSV block), then a value that breaks the column's
    # type: the reader has already written chunks when it fails.
    rows = [f"{i},2024-01-01T00:00:00Z,{i}" for i in range(200_000)]
    rows.append("200000,2024-01-02T00:00:00Z,x")
    (tmp_path / "d.csv").write_text("id,ts,n\n" + "\n".join(rows) + "\n")
    src = Source(path="d.csv", watermark="ts")
    with pytest.raises(BadInput, match=r"nothing was landed|changed type"):
        ingest(store, src, tmp_path, id_column="id", chunk_rows=100)
    assert list_partitions(store, "main") == []
    raw = store.home / "raw"
    leftovers = [p for p in raw.rglob("*") if p.is_file() and p.name != ".lock"]
    assert not raw.exists() or leftovers == []


def test_duplicates_policy_error_lands_nothing(store: Store, tmp_path: Path) -> None:
    df = _rows(0, 10)
    df.loc[5, "id"] = 1
    df.to_parquet(tmp_path / "d.parquet")
    src = Source(path="d.parquet", watermark="ts", duplicates="error")
    with pytest.raises(BadInput, match="repeat an id") as caught:
        ingest(store, src, tmp_path, id_column="id")
    assert "'1'" in caught.value.why
    assert list_partitions(store, "main") == []


def test_snapshot_mode_lands_a_new_snapshot_only_when_the_source_changes(
    store: Store, tmp_path: Path
) -> None:
    src = Source(path="d.parquet")
    _rows(0, 20).to_parquet(tmp_path / "d.parquet")
    assert ingest(store, src, tmp_path, id_column="id").rows_new == 20
    assert ingest(store, src, tmp_path, id_column="id").partition is None
    _rows(0, 25).to_parquet(tmp_path / "d.parquet")
    assert ingest(store, src, tmp_path, id_column="id").rows_new == 25
    parts, df = raw_frame(store, src)
    assert len(parts) == 1 and len(df) == 25  # the newest snapshot alone

    quarantine(store, [parts[0].id])
    with pytest.raises(BadInput, match="quarantined"):
        usable_partitions(store, src)


def test_missing_watermark_or_id_column_is_a_clear_error(store: Store, tmp_path: Path) -> None:
    _rows(0, 5).to_parquet(tmp_path / "d.parquet")
    with pytest.raises(BadInput, match="watermark column 'when'"):
        ingest(store, Source(path="d.parquet", watermark="when"), tmp_path)
    with pytest.raises(BadInput, match="id column 'key'"):
        ingest(store, Source(path="d.parquet", watermark="ts"), tmp_path, id_column="key")
    with pytest.raises(BadInput, match="nothing ingested"):
        usable_partitions(store, Source(path="d.parquet"))


def test_quarantined_partitions_are_left_out_of_later_versions(
    store: Store, tmp_path: Path
) -> None:
    src = Source(path="d.parquet", watermark="ts")
    frames = [_rows(i * 10, 10, day0=f"2024-0{i + 1}-01") for i in range(3)]
    for i in range(3):
        pd.concat(frames[: i + 1]).to_parquet(tmp_path / "d.parquet")
        ingest(store, src, tmp_path, id_column="id")
    parts = list_partitions(store, "main")
    quarantine(store, [parts[1].id])
    used, df = raw_frame(store, src)
    assert [p.id for p in used] == [parts[0].id, parts[2].id]
    assert sorted(df["id"]) == list(range(10)) + list(range(20, 30))


def test_remote_artifacts_root_lands_partitions_through_fsspec(tmp_path: Path) -> None:
    root = f"memory://mlcycle-{uuid.uuid4().hex[:8]}"
    store = Store.open(tmp_path, url=f"sqlite:///{tmp_path / 'm.db'}", artifacts_url=root)
    try:
        src = Source(path="d.parquet", watermark="ts")
        _rows(0, 12).to_parquet(tmp_path / "d.parquet")
        result = ingest(store, src, tmp_path, id_column="id")
        assert result.partition is not None
        fs = fsspec.filesystem("memory")
        assert fs.exists(f"{root.removeprefix('memory://')}/raw/{result.partition.path}")
        assert not (tmp_path / ".mlcycle" / "raw").exists()
        _, df = raw_frame(store, src)
        assert len(df) == 12
        with store.engine.connect() as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(t.raw_partitions)).scalar() == 1
            )
    finally:
        store.close()


def test_two_ingests_at_once_land_the_rows_once(tmp_path: Path) -> None:
    import threading

    _rows(0, 5000).to_parquet(tmp_path / "d.parquet")
    src = Source(path="d.parquet", watermark="ts")
    stores = [Store.open(tmp_path) for _ in range(2)]
    results: list[int] = []
    errors: list[BaseException] = []

    def work(store: Store) -> None:
        try:
            results.append(ingest(store, src, tmp_path, id_column="id").rows_new)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == [] and sorted(results) == [0, 5000]


def test_accept_takes_back_only_quarantined_partitions_and_keeps_the_audit(
    store: Store, tmp_path: Path
) -> None:
    from mlcycle.data.landing import accept

    src = Source(path="d.parquet", watermark="ts")
    frames = [_rows(i * 10, 10, day0=f"2024-0{i + 1}-01") for i in range(2)]
    for i in range(2):
        pd.concat(frames[: i + 1]).to_parquet(tmp_path / "d.parquet")
        ingest(store, src, tmp_path, id_column="id")
    parts = list_partitions(store, "main")
    quarantine(store, [parts[1].id])
    audit = {"by": "ana", "at": "2026-01-01T00:00:00Z", "reason": "new route"}
    assert accept(store, [parts[0].id, parts[1].id], audit=audit) == 1  # parts[0] was in use
    after = list_partitions(store, "main")
    assert [p.status for p in after] == ["landed", "landed"]
    assert after[1].details["accepted"] == [audit] and "accepted" not in after[0].details
    assert accept(store, [parts[1].id], audit=audit) == 0  # not quarantined any more
