"""SQL sources: a query against any SQLAlchemy URL, read in chunks, retried when unreachable.

The query is wrapped as a subquery, so the watermark filter runs on the server
(``SELECT * FROM (<query>) AS src WHERE "<watermark>" > :after``) and only new
rows cross the network. A relative SQLite path is relative to the spec's
folder. Connection failures are retried with exponential backoff
(``data.source.retries`` times) before a clear error; a broken query fails at
once (retrying would not fix it).

Example:
    >>> source = Source(sql="SELECT * FROM flights", url="sqlite:///flights.db",
    ...                 watermark="time_hour")
    >>> count, newest = probe_sql(source, Path("."))
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlcycle.errors import BadInput
from mlcycle.spec import Source
from mlcycle.store import make_engine

BACKOFF_START = 0.25  # seconds; doubled after every failed attempt
BACKOFF_MAX = 4.0


def engine_for(source: Source, base_dir: Path) -> Engine:
    """An engine for the source's URL, a relative SQLite path taken from the spec's folder."""
    assert source.url is not None
    url = source.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        url = prefix + str((base_dir / url.removeprefix(prefix)).resolve())
    return make_engine(url)


def shown_url(engine: Engine) -> str:
    """The URL without its password, for messages."""
    return engine.url.render_as_string(hide_password=True)


def connect(source: Source, engine: Engine) -> Connection:
    """Open a connection, retrying with backoff; a clear error after the last attempt."""
    delay = BACKOFF_START
    attempts = source.retries + 1
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            return engine.connect()
        except sa.exc.DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            if attempt == attempts:
                raise BadInput(
                    f"SQL source {shown_url(engine)} is unreachable",
                    f"{attempts} attempt(s) over {time.monotonic() - started:.1f}s failed: "
                    f"{reason}",
                    "check data.source.url, that the database server is running and "
                    "reachable, and the credentials; raise data.source.retries to wait longer",
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
    raise AssertionError("unreachable")


def _quote(engine: Engine, name: str) -> str:
    return str(engine.dialect.identifier_preparer.quote(name))


def _query_error(engine: Engine, source: Source, exc: sa.exc.DBAPIError) -> BadInput:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return BadInput(
        f"the query of SQL source {shown_url(engine)} failed",
        f"{reason} (query: {source.sql!r})",
        "fix data.source.sql (it must be a SELECT; a watermark column must be one of its columns)",
    )


def probe_sql(source: Source, base_dir: Path) -> tuple[int, Any]:
    """(row count, newest watermark or None) of the query: a cheap change detector."""
    engine = engine_for(source, base_dir)
    try:
        newest = f"MAX({_quote(engine, source.watermark)})" if source.watermark else "NULL"
        query = sa.text(f"SELECT COUNT(*), {newest} FROM ({source.sql}) AS mlcycle_src")
        with connect(source, engine) as conn:
            try:
                row = conn.execute(query).first()
            except sa.exc.DBAPIError as exc:
                raise _query_error(engine, source, exc) from None
        assert row is not None
        return int(row[0]), row[1]
    finally:
        engine.dispose()


def read_sql_chunks(
    source: Source, base_dir: Path, after: Any, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """The query's rows (only those past ``after`` when a watermark is set), in chunks."""
    engine = engine_for(source, base_dir)
    sql = f"SELECT * FROM ({source.sql}) AS mlcycle_src"
    params: dict[str, Any] = {}
    if source.watermark:
        column = _quote(engine, source.watermark)
        if after is not None:
            sql += f" WHERE {column} > :after"
            params["after"] = _param(after)
        sql += f" ORDER BY {column}"
    try:
        with connect(source, engine) as conn:
            try:
                yield from pd.read_sql_query(
                    sa.text(sql), conn, params=params, chunksize=chunk_rows
                )
            except sa.exc.DBAPIError as exc:
                raise _query_error(engine, source, exc) from None
    finally:
        engine.dispose()


def _param(value: Any) -> Any:
    # The stored watermark decodes to a pandas Timestamp; drivers want datetime.
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
