"""Window keys over the prediction log: by day, ISO week, month, or N rows.

Example:
    >>> keys(pd.Series(pd.to_datetime(["2013-07-01", "2013-07-09"], utc=True)), "week")
    ['2013-W27', '2013-W28']
    >>> [str(b.date()) for b in bounds("2013-07", "month")]
    ['2013-07-01', '2013-08-01']
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def rows_per_window(window: str) -> int | None:
    """N for ``rows:N``, else ``None`` (a time window)."""
    return int(window.split(":", 1)[1]) if window.startswith("rows:") else None


def keys(ts: pd.Series, window: str, offsets: np.ndarray | None = None) -> pd.Series:
    """The window key of every row: from ``ts`` for time windows, ``offsets`` for row windows."""
    n = rows_per_window(window)
    if n is not None:
        assert offsets is not None
        return pd.Series([f"rows-{i:07d}" for i in (offsets // n).tolist()], index=ts.index)
    ts = pd.to_datetime(ts, utc=True)
    if window == "day":
        return ts.dt.strftime("%Y-%m-%d")
    if window == "month":
        return ts.dt.strftime("%Y-%m")
    iso = ts.dt.isocalendar()
    return iso["year"].astype(str) + "-W" + iso["week"].astype(int).map("{:02d}".format)


def bounds(key: str, window: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """``[start, end)`` of a time window; ``None`` for a row window."""
    if window == "day":
        start = pd.Timestamp(key, tz="UTC")
        return start, start + pd.Timedelta(days=1)
    if window == "month":
        start = pd.Timestamp(key + "-01", tz="UTC")
        return start, start + pd.DateOffset(months=1)
    if window == "week":
        year, week = key.split("-W")
        start = pd.Timestamp.fromisocalendar(int(year), int(week), 1).tz_localize("UTC")
        return start, start + pd.Timedelta(days=7)
    return None
