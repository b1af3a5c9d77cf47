"""Where tuning keeps its Optuna studies: beside the store, never in its Alembic namespace."""

from __future__ import annotations

import pytest

from mlcycle.errors import BadInput
from mlcycle.train.tuning import optuna_url


def test_sqlite_studies_live_in_a_sibling_file() -> None:
    assert optuna_url("sqlite:////tmp/p/.mlcycle/mlcycle.db") == (
        "sqlite:////tmp/p/.mlcycle/mlcycle.optuna.db"
    )


def test_in_memory_store_cannot_keep_studies() -> None:
    with pytest.raises(BadInput, match="in-memory"):
        optuna_url("sqlite://")


def test_postgres_studies_get_their_own_schema(store_url: str) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    import sqlalchemy as sa

    url = optuna_url(store_url)
    assert "_optuna" in url
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        assert schema.endswith("_optuna")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
