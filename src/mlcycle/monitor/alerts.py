"""Alerts: rules over the window metrics, persistence, and sinks that never lose one.

A rule (:class:`mlcycle.spec.AlertRule`) names a window metric and a bound:
``above``/``below`` (fixed), or ``band: reference`` (the band stored with the
window under ``band:<metric>``, learned from the reference). It fires on the
window where the breach has lasted ``persistence`` consecutive windows, once
per streak. Every alert is stored (model, model version, window, rule, value,
bound) before any sink sees it; the sinks are the log, a JSON-lines file and a
webhook. A webhook that fails after its retries leaves the alert ``pending``;
the next run (or ``mlcycle monitor alerts --retry``) sends it again.

Example:
    >>> rules = default_rules(settings, features=["distance", "carrier"])
    >>> fired = evaluate_rules(rules, windows)
    >>> deliver(store, sinks, base_dir)
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlcycle.spec import AlertRule, AlertSinks
from mlcycle.spec import Monitor as MonitorSettings
from mlcycle.store import Store, now
from mlcycle.store import tables as t

log = logging.getLogger("mlcycle.monitor")


@dataclass
class Window:
    """One window's metrics as the rules see them."""

    key: str
    model_version: int | None
    metrics: dict[str, Any]


def default_rules(
    settings: MonitorSettings,
    features: list[str],
    primary: str,
    *,
    seasonal: Sequence[str] = (),
) -> list[AlertRule]:
    """The rules used when the spec lists none.

    One drift rule per feature that is not ``seasonal`` (a seasonal feature's
    drift is expected and reported, not alerted; persistence from ``monitor.persistence``),
    prediction drift, the anomaly rate against its reference band, the
    realized primary metric against its band (significantly worse than on the
    holdout) and the concept-drift signal.
    """
    k = settings.persistence
    rules = [
        AlertRule(name=f"data_drift:{f}", metric=f"drift:{f}", above=0.5, persistence=k)
        for f in features
        if f not in set(seasonal)
    ]
    rules += [
        AlertRule(name="prediction_drift", metric="prediction_drift", above=0.5, persistence=k),
        AlertRule(name="anomaly_rate", metric="anomaly_rate", band="reference", persistence=k),
        AlertRule(
            name=f"performance:{primary}",
            metric=f"realized:{primary}",
            band="reference",
            persistence=1,
            severity="critical",
        ),
        AlertRule(name="concept_drift", metric="concept_drift", above=0.5, persistence=1),
    ]
    return rules


def breach(rule: AlertRule, metrics: dict[str, Any]) -> tuple[bool, float | None, str]:
    """Whether one window breaks ``rule``: (breached, value, bound as text)."""
    value = metrics.get(rule.metric)
    if value is None or isinstance(value, (list, dict)):
        return False, None, "n/a"
    value = float(value)
    if not math.isfinite(value):
        return False, None, "n/a"
    lo, hi = rule.below, rule.above
    if rule.band == "reference":
        band = metrics.get(f"band:{rule.metric}")
        if not band:
            return False, value, "no band"
        lo, hi = band
    broken = (lo is not None and value < lo) or (hi is not None and value > hi)
    return bool(broken), value, _bound_text(lo, hi)


def _bound_text(lo: float | None, hi: float | None) -> str:
    """What the metric should be, readable in a table: ``≤ 0.5``, ``≥ 0.86``, ``0 to 0.019``."""
    if lo is None and hi is None:
        return "any"
    if lo is None:
        return f"≤ {hi:.4g}"
    if hi is None:
        return f"≥ {lo:.4g}"
    return f"{lo:.4g} to {hi:.4g}"


def evaluate_rules(rules: list[AlertRule], windows: list[Window]) -> list[dict[str, Any]]:
    """Alerts for every window (in time order) where a breach reaches its persistence."""
    fired = []
    for rule in rules:
        streak = 0
        for w in windows:
            broken, value, bound = breach(rule, w.metrics)
            if w.metrics.get("partial") or w.metrics.get("too_small"):
                continue  # an unfinished or tiny window neither breaks nor ends a streak
            streak = streak + 1 if broken else 0
            if streak == rule.persistence:
                fired.append(
                    {
                        "window": w.key,
                        "model_version": w.model_version,
                        "rule": rule.name,
                        "metric": rule.metric,
                        "value": value,
                        "bound": bound,
                        "severity": rule.severity,
                        "message": f"{rule.name}: {rule.metric} = {value:.4g}, expected "
                        f"{bound}, for {rule.persistence} window(s) up to {w.key}",
                    }
                )
    return fired


def store_alerts(store: Store, model: str, alerts: list[dict[str, Any]], sinks: list[str]) -> int:
    """Insert alerts not stored yet (one per model, rule and window); return how many are new."""
    new = 0
    with store.engine.begin() as conn:
        for a in alerts:
            exists = conn.execute(
                sa.select(t.monitor_alerts.c.id).where(
                    t.monitor_alerts.c.model == model,
                    t.monitor_alerts.c.rule == a["rule"],
                    t.monitor_alerts.c.window == a["window"],
                )
            ).first()
            if exists:
                continue
            conn.execute(
                t.monitor_alerts.insert().values(
                    model=model,
                    model_version=a["model_version"],
                    window=a["window"],
                    rule=a["rule"],
                    metric=a["metric"],
                    value=a["value"],
                    bound=a["bound"],
                    severity=a["severity"],
                    message=a["message"],
                    created_at=now(),
                    pending=json.dumps(sinks),
                    attempts=0,
                )
            )
            new += 1
    return new


def list_alerts(store: Store, model: str) -> list[dict[str, Any]]:
    """Every stored alert of ``model``, oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.monitor_alerts)
            .where(t.monitor_alerts.c.model == model)
            .order_by(t.monitor_alerts.c.id)
        ).mappings()
        out = []
        for r in rows:
            item = dict(r)
            item["pending"] = json.loads(item["pending"])
            out.append(item)
    return out


def sink_names(sinks: AlertSinks) -> list[str]:
    """The sinks an alert must reach: always the log, then the configured ones."""
    names = ["log"]
    if sinks.jsonl:
        names.append("jsonl")
    if sinks.webhook:
        names.append("webhook")
    return names


def deliver(
    store: Store, model: str, sinks: AlertSinks, base_dir: Path, *, sleep: Any = time.sleep
) -> dict[str, int]:
    """Send every pending alert to the sinks it has not reached; return counts.

    The webhook gets ``1 + webhook_retries`` attempts per run with exponential
    backoff (``webhook_backoff_s`` · 2^i); an alert it refuses stays pending
    with its attempt count and last error, so nothing is lost.
    """
    counts = {"delivered": 0, "pending": 0}
    for alert in list_alerts(store, model):
        pending: list[str] = alert["pending"]
        if not pending:
            continue
        payload = {
            k: alert[k]
            for k in (
                "id",
                "model",
                "model_version",
                "window",
                "rule",
                "metric",
                "value",
                "bound",
                "severity",
                "message",
                "created_at",
            )
        }
        left: list[str] = []
        error = alert.get("last_error")
        attempts = int(alert["attempts"])
        for sink in pending:
            if sink == "log":
                log.warning("ALERT %s", payload["message"])
            elif sink == "jsonl" and sinks.jsonl:
                path = Path(sinks.jsonl)
                path = path if path.is_absolute() else base_dir / path
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(payload, default=str) + "\n")
            elif sink == "webhook" and sinks.webhook:
                ok, tries, error = _post(sinks, payload, sleep)
                attempts += tries
                if not ok:
                    left.append(sink)
        with store.engine.begin() as conn:
            conn.execute(
                t.monitor_alerts.update()
                .where(t.monitor_alerts.c.id == alert["id"])
                .values(pending=json.dumps(left), attempts=attempts, last_error=error)
            )
        counts["pending" if left else "delivered"] += 1
    return counts


def _post(sinks: AlertSinks, payload: dict[str, Any], sleep: Any) -> tuple[bool, int, str | None]:
    import httpx

    assert sinks.webhook is not None
    error: str | None = None
    tries = 0
    for i in range(1 + sinks.webhook_retries):
        if i:
            sleep(sinks.webhook_backoff_s * 2 ** (i - 1))
        tries += 1
        try:
            response = httpx.post(sinks.webhook, json=payload, timeout=5.0)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code < 300:
            return True, tries, None
        error = f"HTTP {response.status_code}"
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            break  # the receiver refuses this payload; retrying now will not change that
    return False, tries, error
