"""SQL sources against the real SQLite and (when configured) the real PostgreSQL server."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from mlcycle.data.build import raw_frame
from mlcycle.data.ingest import ingest, source_fingerprint
from mlcycle.errors import BadInput
from mlcycle.spec import Source
from mlcycle.store import Store, make_engine

POSTGRES_URL = os.environ.get("MLCYCLE_TEST_POSTGRES_URL")


def _rows(start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(start, start + n),
            "ts": pd.date_range("2024-01-01", periods=start + n, freq="h")[start:],
            "x": [float(i) / 10 for i in range(start, start + n)],
            "c": ["a" if i % 3 else "b" for i in range(start, start + n)],
        }
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(SQLAlchemy URL, table name) of a throwaway table, dropped afterwards."""
    table = f"flights_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        yield "sqlite:///source.db", table
        return
    if not POSTGRES_URL:
        pytest.skip("MLCYCLE_TEST_POSTGRES_URL is not set")
    try:
        yield POSTGRES_URL, table
    finally:
        engine = make_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()


def _engine(url: str, base: Path) -> sa.Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = f"sqlite:///{base / url.removeprefix('sqlite:///')}"
    return make_engine(url)


def test_sql_source_ingests_incrementally_by_watermark(
    database: tuple[str, str], store: Store, tmp_path: Path
) -> None:
    url, table = database
    engine = _engine(url, tmp_path)
    try:
        _rows(0, 40).to_sql(table, engine, index=False)
        src = Source(sql=f'SELECT * FROM "{table}"', url=url, watermark="ts")
        first = ingest(store, src, tmp_path, id_column="id")
        assert first.rows_new == 40 and first.partition is not None
        fingerprint = source_fingerprint(src, tmp_path)
        assert ingest(store, src, tmp_path, id_column="id").partition is None

        _rows(40, 15).to_sql(table, engine, index=False, if_exists="append")
        assert source_fingerprint(src, tmp_path) != fingerprint
        second = ingest(store, src, tmp_path, id_column="id")
        # The filter ran on the server: only the 15 new rows crossed over.
        assert second.rows_read == 15 and second.rows_new == 15
        _, df = raw_frame(store, src)
        assert sorted(df["id"]) == list(range(55))
    finally:
        engine.dispose()


def test_a_broken_query_fails_at_once_with_the_reason(store: Store, tmp_path: Path) -> None:
    src = Source(sql="SELECT * FROM no_such_table", url="sqlite:///source.db", retries=5)
    with pytest.raises(BadInput, match="query of SQL source") as caught:
        ingest(store, src, tmp_path)
    assert "no_such_table" in caught.value.why


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_retried_then_reported(store: Store, tmp_path: Path) -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{_free_port()}/nothing"
    src = Source(sql="SELECT 1 AS x", url=url, retries=2)
    with pytest.raises(BadInput, match="unreachable") as caught:
        ingest(store, src, tmp_path)
    assert "3 attempt(s)" in caught.value.why
    assert "secret" not in caught.value.message  # the password is never shown


def test_sql_spec_needs_a_url_and_one_kind_of_source() -> None:
    from mlcycle.spec import Spec

    base = {"project": "p", "problem": {"task": "binary", "target": "y"}}
    with pytest.raises(BadInput, match="needs 'url'"):
        Spec.from_dict(base | {"data": {"source": {"sql": "SELECT 1"}}})
    with pytest.raises(BadInput, match="exactly one"):
        Spec.from_dict(base | {"data": {"source": {"sql": "SELECT 1", "path": "x", "url": "u"}}})
    with pytest.raises(BadInput, match="exactly one"):
        Spec.from_dict(base | {"data": {"source": {}}})
    ok = Spec.from_dict(base | {"data": {"source": {"path": "d.csv"}}})
    assert ok.data.source.watermark is None and ok.data.source.name == "main"
