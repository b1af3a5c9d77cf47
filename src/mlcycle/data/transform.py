"""Building a dataset version's rows: landed raw partitions, then the declared transforms.

Transforms run in order, each on the previous one's output. A ``sql`` transform
is DuckDB SQL over the table ``raw``; a ``function`` transform is
``module:function`` taking and returning a DataFrame (the spec's folder is on
``sys.path`` for the import). :func:`transforms_hash` covers the SQL text and
the source code of each function, so editing a function makes a new version.

Example:
    >>> df = apply_transforms(raw_df, [Transform(sql="SELECT * FROM raw WHERE distance > 100")],
    ...                       Path("."))
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.errors import BadInput
from mlcycle.spec import Transform


def apply_transforms(
    df: pd.DataFrame, transforms: Sequence[Transform], base_dir: Path
) -> pd.DataFrame:
    """Run each transform on the output of the one before; return the last output.

    Example:
        >>> out = apply_transforms(pd.DataFrame({"a": [1, 2]}),
        ...                        [Transform(sql="SELECT a * 10 AS b FROM raw")], Path("."))
        >>> out["b"].tolist()
        [10, 20]
    """
    for position, transform in enumerate(transforms, start=1):
        if transform.sql is not None:
            df = _run_sql(df, transform.sql, position)
        else:
            assert transform.function is not None
            df = _run_function(df, transform.function, position, base_dir)
        if not isinstance(df, pd.DataFrame):
            raise BadInput(
                f"transform {position} returned {type(df).__name__}, not a DataFrame",
                "every transform takes and returns a pandas DataFrame",
                "return a DataFrame from the function",
            )
    return df


def transforms_hash(transforms: Sequence[Transform], base_dir: Path) -> str:
    """sha256 of what the transforms do: SQL text, and each function's source code."""
    parts: list[Any] = []
    for transform in transforms:
        if transform.sql is not None:
            parts.append(["sql", transform.sql])
        else:
            assert transform.function is not None
            fn = _resolve(transform.function, base_dir, 0)
            try:
                code = inspect.getsource(fn)
            except (OSError, TypeError):
                code = getattr(getattr(fn, "__code__", None), "co_code", b"").hex()
            parts.append(["function", transform.function, code])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _run_sql(df: pd.DataFrame, sql: str, position: int) -> pd.DataFrame:
    import duckdb

    con = duckdb.connect()
    try:
        # Timestamps come back in UTC, as they went in, not in the machine's zone.
        con.execute("SET TimeZone = 'UTC'")
        con.register("raw", df)
        out = con.execute(sql).df()
    except duckdb.Error as exc:
        raise BadInput(
            f"SQL transform {position} failed",
            f"{str(exc).splitlines()[0]} (sql: {sql!r})",
            "fix data.transforms: the input table is named raw, e.g. "
            "SELECT * FROM raw WHERE distance > 0",
        ) from None
    finally:
        con.close()
    return out


def _resolve(dotted: str, base_dir: Path, position: int) -> Callable[[pd.DataFrame], Any]:
    module_name, _, name = dotted.partition(":")
    folder = str(base_dir.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput(
            f"transform {position}: cannot import module '{module_name}'",
            str(exc),
            "put the module next to mlcycle.yaml or install it; write it as module:function",
        ) from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise BadInput(
            f"transform {position}: '{module_name}' has no function '{name}'",
            f"it defines: {', '.join(n for n in dir(module) if not n.startswith('_'))[:300]}",
            "fix the name in data.transforms",
        )
    return fn


def _run_function(df: pd.DataFrame, dotted: str, position: int, base_dir: Path) -> pd.DataFrame:
    fn = _resolve(dotted, base_dir, position)
    try:
        out = fn(df.copy())
    except Exception as exc:  # user code: any failure becomes an actionable message
        raise BadInput(
            f"transform {position} ({dotted}) raised {type(exc).__name__}",
            str(exc)[:300],
            "fix the function; it takes and returns a pandas DataFrame",
        ) from exc
    return out
