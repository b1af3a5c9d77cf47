"""Shared fixtures: stores on SQLite and (when MLCYCLE_TEST_POSTGRES_URL is set) PostgreSQL."""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share two cores: scikit-learn's OpenMP pool would otherwise
    # spin-wait for a core the other worker holds (a fit ran 8x slower that way).
    # Set before anything imports scikit-learn; `mlcycle` subprocesses inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlcycle.store import Store, make_engine
from ray_fixtures import ray_cluster  # noqa: F401  (the session's Ray cluster, a fixture)
from s3_fixtures import s3_bucket, s3_env, s3_restricted, s3_server  # noqa: F401

POSTGRES_URL = os.environ.get("MLCYCLE_TEST_POSTGRES_URL")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own settings must not leak into tests.
    for name in ("MLCYCLE_STORE_URL", "MLCYCLE_ARTIFACTS_URL", "MLCYCLE_SPEC", "MLCYCLE_ACTOR"):
        monkeypatch.delenv(name, raising=False)


def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    assert POSTGRES_URL is not None
    schema = f"mlcycle_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("MLCYCLE_TEST_POSTGRES_URL is not set")
    yield from postgres_schema_url()


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path, url=store_url, artifacts_url=str(tmp_path / "artifacts"))
    yield opened
    opened.close()
