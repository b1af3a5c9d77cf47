"""The evaluation report's HTML: every section, in order, from the report data alone."""

from __future__ import annotations

import re
from typing import Any

from mlcycle.evaluate.report import render_html

ROC = [[0.0, 0.0], [0.1, 0.5], [0.3, 0.8], [1.0, 1.0]]


def _binary() -> dict[str, Any]:
    return {
        "project": "flights <x>",
        "evaluation": {
            "task": "binary",
            "primary_metric": "roc_auc",
            "rows": 500,
            "confidence": 0.9,
            "n_boot": 200,
            "metrics": {
                "candidate": {"roc_auc": 0.81, "log_loss": 0.4, "ece": 0.03},
                "baseline": {"roc_auc": 0.5, "log_loss": 0.69},
            },
            "intervals": {"candidate": {"roc_auc": [0.78, 0.84]}},
            "benefit": {
                "threshold": 0.4321,
                "per_row": {"candidate": 1.5, "baseline": 0.2},
                "interval": [1.1, 1.9],
            },
            "slices": [
                {
                    "column": "carrier",
                    "value": "AA",
                    "rows": 100,
                    "judged": True,
                    "metrics": {"candidate": {"roc_auc": 0.8}},
                    "intervals": {"candidate": {"roc_auc": [0.7, 0.9]}},
                },
                {
                    "column": "carrier",
                    "value": "UA",
                    "rows": 10,
                    "judged": False,
                    "metrics": {"candidate": {"roc_auc": 0.6}},
                },
            ],
        },
        "blessing": {
            "blessed": True,
            "checks": [
                {"name": "beats baseline", "passed": True, "detail": "0.81 > 0.5"},
                {"name": "no slice worse", "passed": False, "detail": "carrier = AA"},
            ],
        },
        "champion": {
            "version": 3,
            "metrics": {"roc_auc": 0.79},
            "comparison": {
                "test": "DeLong",
                "rows": 500,
                "improvement": 0.02,
                "ci_low": -0.01,
                "ci_high": 0.05,
                "p_value": 0.12345,
            },
            "slices": [
                {
                    "column": "carrier",
                    "value": "AA",
                    "judged": True,
                    "improvement": -0.03,
                    "ci_low": -0.06,
                    "ci_high": -0.01,
                }
            ],
        },
        "benefit_matrix": {"tp": 10, "fp": -1},
        "details": {
            "roles": {
                "candidate": {
                    "curves": {"roc": ROC, "pr": [[0.0, 1.0], [1.0, 0.3]]},
                    "calibration": [{"predicted": 0.1, "observed": 0.12}],
                    "confusion": {"labels": ["no", "yes"], "matrix": [[50, 5], [7, 38]]},
                },
                "baseline": {"curves": {"roc": [[0.0, 0.0], [1.0, 1.0]], "pr": []}},
            }
        },
    }


def test_sections_come_in_order_with_the_verdict_and_escaped_text() -> None:
    page = render_html(_binary())
    assert page.startswith("<!doctype html>") and page.endswith("</body></html>")
    assert 'flights &lt;x&gt;: holdout evaluation <span class="badge ok">blessed</span>' in page
    assert "90% intervals from 200 bootstrap resamples (seeded) · champion v3" in page
    headings = re.findall(r"<h2>([^<(]+)", page)
    assert headings == ["Gate", "Metrics", "Benefit", "Curves", "Versus champion v3", "Slices "]
    assert "<td>beats baseline</td><td><span class='pass'>✔ pass</span></td>" in page
    assert "<span class='fail'>✘ fail</span>" in page
    assert "0.81 &gt; 0.5" in page


def test_metrics_put_the_primary_first_with_intervals_and_the_champion() -> None:
    page = render_html(_binary())
    rows = re.findall(r"<tr><td>(?:<b>)?(\w+)(?:</b>)? ?", page.split("<h2>Metrics")[1])
    assert rows[:3] == ["roc_auc", "ece", "log_loss"]
    assert "<td><b>roc_auc</b> ↑</td><td>0.8100<br><span class='ci'>0.7800 … 0.8400</span>" in page
    assert "<td>log_loss ↓</td><td>0.4000</td><td>0.6900</td><td>–</td>" in page
    assert "<th>champion</th>" in page


def test_benefit_curves_comparison_and_slices() -> None:
    page = render_html(_binary())
    assert "Decision threshold <b>0.432</b>" in page
    assert "candidate 90% CI 1.100 … 1.900" in page
    for caption in (
        "ROC curve",
        "Precision–recall curve",
        "Reliability (calibration) · ECE 0.0300",
        "Confusion matrix (candidate)",
    ):
        assert f"<figcaption>{caption}</figcaption><svg" in page
    assert "improvement in roc_auc <b>+0.0200</b> (90% CI -0.0100 … +0.0500, p = 0.123)" in page
    slices = page.split("<h2>Slices")[1]
    assert "<td class='fail'>-0.0300<br><span class='ci'>-0.0600 … -0.0100</span></td>" in slices
    assert "<td>carrier = UA</td><td>10</td><td>no</td><td>0.6000</td><td>–</td>" in slices


def test_cold_start_regression_scatter_and_nothing_from_the_network() -> None:
    data = {
        "evaluation": {
            "task": "regression",
            "primary_metric": "rmse",
            "rows": 40,
            "metrics": {"candidate": {"rmse": 2.0}},
        },
        "blessing": {"blessed": False, "checks": []},
        "details": {"roles": {"candidate": {"scatter": [[1.0, 1.2], [5.0, 5.5]]}}},
    }
    page = render_html(data)
    assert '<span class="badge bad">refused</span>' in page
    assert "no champion (cold start)" in page and "Versus champion" not in page
    assert "<figcaption>Predicted vs actual (scaled)</figcaption>" in page
    assert page.count("<circle") == 2
    body = page.split("<body>")[1].replace("http://www.w3.org/2000/svg", "")
    assert "http" not in body
