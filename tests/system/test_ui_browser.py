"""`mlcycle ui` in a real browser (Debian's chromium driven by Playwright) on a real project:
trained, registered, promoted and monitored by the `mlcycle` command.

Every page must show the project's data, load nothing but 127.0.0.1 and log no
script error; the runs table filters and sorts; promote with a reason moves the
alias and shows in the history under the browser user's name; the lineage
graphs (of a model version and of a logged prediction) lead to live pages; a
second dataset version diffs against the first; the loop page shows rollbacks
and the backtest report.
Screenshots of each page at 1280 and 390 px go to /tmp/ui-shots/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import yaml

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")
# Who the server acts as (loopback, no token): what the alias history must show.
ACTOR = "browser-user"
# `mlcycle monitor replay` logs each row as its own request: replay-<month>-<n>.
REQUEST = "replay-2013-07-0"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path("/tmp/ui-shots")

# Under CI the Makefile installs Chromium, so a missing browser there is a failure.
# The first test also pays for the project (run + replay): minutes on a busy machine.
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"), reason="no chromium on this machine"
    ),
    pytest.mark.timeout(1200),
]


def cli(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    result = subprocess.run(
        [MLCYCLE, *args], cwd=cwd, text=True, capture_output=True, env=env, timeout=900, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"mlcycle {' '.join(args)}: {result.stdout}\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flights project (2% of the rows, a small model): run, then monitored by replay."""
    root = tmp_path_factory.mktemp("ui")
    cli(root, "init", "proj", "--example", "flights", "--sample", "0.02")
    proj = root / "proj"
    spec = yaml.safe_load((proj / "mlcycle.yaml").read_text())
    spec["train"]["candidates"][0]["params"]["max_iter"] = 40  # a smaller model: faster
    (proj / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    cli(proj, "run")
    cli(proj, "monitor", "replay", "--label-delay", "1")
    return proj


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    env["MLCYCLE_ACTOR"] = ACTOR
    proc = subprocess.Popen(
        [MLCYCLE, "ui", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/static/ui.css", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM is not None, "CI=true: chromium must be installed (make browser)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


class Watched:
    """A page whose console errors, page errors and off-host requests are recorded."""

    def __init__(self, browser: Any, width: int = 1280, javascript: bool = True) -> None:
        self.context = browser.new_context(
            viewport={"width": width, "height": 900}, java_script_enabled=javascript
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.remote: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.context.route("**/*", self._only_local)

    def _only_local(self, route: Any) -> None:
        url = route.request.url
        if urlparse(url).hostname == "127.0.0.1" or url.startswith("data:"):
            route.continue_()
        else:
            self.remote.append(url)
            route.abort()

    def close(self) -> None:
        self.context.close()


def shot_name(path: str) -> str:
    """A screenshot's file name for a page: ids cut to 8 characters, so two pages of one
    dataset version (its page and its report) do not share a name."""
    short = re.sub(r"[0-9a-f]{12,}", lambda m: m.group()[:8], path.strip("/"))
    return re.sub(r"[^a-z0-9]+", "_", short)[:60] or "overview"


def facts(project: Path) -> dict[str, Any]:
    """What the CLI says about the project, to find on the pages."""
    shown = json.loads(cli(project, "models", "show", "flights@champion", "--json"))
    versions = json.loads(cli(project, "data", "versions", "--json"))
    runs = json.loads(cli(project, "runs", "list", "--json"))
    # The champion's data version (newer versions may be ingested by a test).
    assert shown["dataset_id"] in {v["id"] for v in versions}
    return {"model": shown, "dataset": shown["dataset_id"], "runs": runs}


def test_every_view_shows_the_projects_data(project: Path, server: str, browser: Any) -> None:
    known = facts(project)
    roc = f"{known['model']['metrics']['roc_auc']:.4g}"
    expect = {
        "/": [
            "champion: v1",
            roc,
            "Last pipeline runs",
            "succeeded",
            known["dataset"][:12],
            "Loop: idle",
        ],
        "/models": ["v1", "champion"],
        "/models/flights": ["Alias history", "champion", "Promote"],
        "/models/flights/1": [roc, "The gate's checks", "Model card", "baseline"],
        "/pipeline": ["ingest", "gate", "promote", "from cache"],
        "/runs": ["hgb", "baseline", "valid_roc_auc"],
        f"/runs/{known['runs'][0]['id']}": [known["runs"][0]["name"], "Params"],
        "/data": [known["dataset"][:12], "valid"],
        f"/data/{known['dataset']}": [
            "Columns",
            "dep_delay",
            "Models trained on it",
            "Data report",
        ],
        f"/data/{known['dataset']}/report": ["Distributions", "Missing values"],
        "/monitor": ["2013-07", "Drift per feature", "drift of dep_delay", "Alerts"],
        "/lineage/flights/1": ["dataset", "splits", "evaluation", "champion (promote)"],
        "/loop": ["Continuous training: flights", "Loop runs", "Rollbacks", "Backtest"],
        f"/lineage/prediction:{REQUEST}": ["Made by", "flights v1 (batch)", "Logged rows"],
    }
    SHOTS.mkdir(exist_ok=True)
    for width in (1280, 390):
        watched = Watched(browser, width)
        for path, needles in expect.items():
            response = watched.page.goto(server + path)
            assert response is not None and response.status == 200, path
            text = watched.page.inner_text("main" if not path.endswith("/report") else "body")
            for needle in needles:
                assert needle in text, (path, needle)
            name = shot_name(path)
            watched.page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        assert watched.errors == [] and watched.remote == [], (watched.errors, watched.remote)
        watched.close()


def test_pages_read_without_javascript(server: str, browser: Any) -> None:
    watched = Watched(browser, javascript=False)
    watched.page.goto(server + "/runs?filter=name+%3D+%27hgb%27")
    names = watched.page.locator("#runs-table tbody td:nth-child(2)").all_inner_texts()
    assert names and set(names) == {"hgb"}
    watched.page.goto(server + "/monitor")
    assert watched.page.locator("svg").count() > 5
    watched.close()


def column(page: Any, index: int) -> list[str]:
    return page.locator(f"#runs-table tbody td:nth-child({index})").all_inner_texts()


def test_runs_table_filters_and_sorts(server: str, browser: Any) -> None:
    watched = Watched(browser)
    page = watched.page
    page.goto(server + "/runs")
    every = column(page, 2)
    assert {"hgb", "baseline", "train"} <= set(every)
    page.fill("input[name=filter]", "tags.role = 'candidate'")
    page.click("#runs-query button")
    page.wait_for_load_state()
    assert set(column(page, 2)) == {"hgb"} and "filter=tags.role" in page.url
    page.fill("input[name=filter]", "metrics.valid_roc_auc > 0")
    page.click("#runs-query button")
    page.click("a[data-sort='metrics.valid_roc_auc']")  # first click: descending
    headers = page.locator("#runs-table thead th").all_inner_texts()
    auc_at = next(i for i, h in enumerate(headers) if h.startswith("valid_roc_auc")) + 1
    values = [float(v) for v in column(page, auc_at)]
    assert len(values) >= 2 and values == sorted(values, reverse=True)
    page.click("a[data-sort='metrics.valid_roc_auc']")  # second click: ascending
    values = [float(v) for v in column(page, auc_at)]
    assert values == sorted(values)
    bad = page.goto(server + "/runs?filter=metrics.valid_roc_auc+%3E+%27x%27")
    assert bad is not None and bad.status == 400
    assert "metrics are numbers" in page.inner_text("main")
    # Chromium logs the 400 of that page as a console error: expected here, and only here.
    assert [e for e in watched.errors if "400 (Bad Request)" not in e] == []
    watched.errors.clear()
    page.goto(server + "/runs")
    boxes = page.locator("#runs-table input[name=id]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#compare-form .pager button")
    assert "/runs/compare?" in page.url and page.locator("#compare-table").count() == 1
    assert watched.errors == [] and watched.remote == []
    watched.close()


def test_promote_with_a_reason_moves_the_alias(project: Path, server: str, browser: Any) -> None:
    watched = Watched(browser)
    page = watched.page
    page.goto(server + "/models/flights")
    form = page.locator("#promote-form")
    form.locator("select[name=version]").select_option("1")
    form.locator("input[name=alias]").fill("challenger")
    form.locator("input[name=reason]").fill("browser test: shadow it")
    form.locator("button").click()
    page.wait_for_load_state()
    assert page.url.startswith(server + "/models/flights?notice=")
    assert "challenger → v1" in page.inner_text(".notice")
    first = page.locator("#history-table tbody tr").first.inner_text()
    assert "challenger" in first and "browser test: shadow it" in first and "promote" in first
    assert ACTOR in first  # the browser's user (here MLCYCLE_ACTOR of the server), not "ui"
    history = json.loads(cli(project, "models", "history", "flights", "--json"))
    assert history[-1]["alias"] == "challenger" and history[-1]["to_version"] == 1
    assert history[-1]["reason"] == "browser test: shadow it" and history[-1]["actor"] == ACTOR
    page.goto(server + "/")
    assert "challenger: v1" in page.inner_text("main")
    # A stale page: the alias moved since it was loaded, so the move is refused.
    page.goto(server + "/models/flights")
    page.evaluate("document.querySelector('input[name=seen_challenger]').value = '7'")
    form = page.locator("#promote-form")
    form.locator("input[name=alias]").fill("challenger")
    form.locator("input[name=reason]").fill("stale")
    form.locator("button").click()
    page.wait_for_load_state()
    assert "moved meanwhile" in page.inner_text("main")
    assert watched.remote == []
    watched.close()


def test_lineage_nodes_link_to_their_pages(project: Path, server: str, browser: Any) -> None:
    known = facts(project)
    watched = Watched(browser)
    page = watched.page
    page.goto(server + "/lineage/flights/1")
    nodes = page.locator("svg.lineage a.node")
    hrefs = {
        nodes.nth(i).get_attribute("data-node"): nodes.nth(i).get_attribute("href")
        for i in range(nodes.count())
    }
    assert hrefs[known["dataset"]] == f"/data/{known['dataset']}"
    assert hrefs["model:flights/1"] == "/models/flights/1"
    assert any(k.startswith("partition:") for k in hrefs) and any(
        k.startswith("run:") for k in hrefs
    )
    for href in set(hrefs.values()):
        assert page.request.get(server + href).status == 200, href
    page.click(f"svg.lineage a.node[data-node='{known['dataset']}']")
    page.wait_for_load_state()
    assert page.url == f"{server}/data/{known['dataset']}"
    assert "Dataset version" in page.inner_text("h1")
    # A logged prediction: the same chain as `mlcycle lineage prediction:REQ/ROW`.
    cli_view = json.loads(cli(project, "lineage", f"prediction:{REQUEST}", "--json"))
    row_id = cli_view["rows"][0]["row_id"]
    page.goto(f"{server}/lineage/prediction:{REQUEST}")
    page.click(f"#logged-rows ~ div a[href$='/{row_id}']")
    page.wait_for_load_state()
    assert page.url == f"{server}/lineage/prediction:{REQUEST}/{row_id}"
    nodes = page.locator("svg.lineage a.node")
    hrefs = {
        nodes.nth(i).get_attribute("data-node"): nodes.nth(i).get_attribute("href")
        for i in range(nodes.count())
    }
    version = cli_view["versions"][0]
    assert hrefs["model:flights/1"] == "/models/flights/1"
    assert hrefs[version["bundle_id"]] == "/models/flights/1"
    assert hrefs[version["dataset_id"]] == f"/data/{version['dataset_id']}"
    assert f"run:{version['run_id']}" in hrefs
    made_by = page.inner_text("#prediction-versions")
    assert "flights v1" in made_by and version["dataset_id"][:12] in made_by
    for href in set(hrefs.values()):
        assert page.request.get(server + href).status == 200, href
    page.click("svg.lineage a.node[data-node='model:flights/1']")
    page.wait_for_load_state()
    assert page.url == f"{server}/models/flights/1"
    assert watched.errors == [] and watched.remote == []
    watched.close()


def test_a_new_dataset_version_diffs_against_the_last(
    project: Path, server: str, browser: Any
) -> None:
    import pandas as pd

    source = project / "data" / "flights.parquet"
    rows = pd.read_parquet(source)
    rows.iloc[30:].to_parquet(source, index=False)  # 30 rows gone, nothing else changed
    try:
        cli(project, "data", "ingest")
    finally:
        rows.to_parquet(source, index=False)
    latest = json.loads(cli(project, "data", "versions", "--json"))[0]
    newest = latest["id"]
    watched = Watched(browser, 390)
    page = watched.page
    page.goto(server + "/data")
    page.click(f"a[href$='/{newest}'][href^='/data/diff/']")
    page.wait_for_load_state()
    assert page.url.endswith(f"/{newest}") and "/data/diff/" in page.url
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "data_diff-390.png"), full_page=True)
    assert "0 added · 30 removed" in page.inner_text("#diff-rows")
    assert "The schema did not change." in page.inner_text("main")
    assert page.locator("#diff-columns tbody tr").count() >= 20
    page.goto(f"{server}/data/{newest}")
    page.locator("iframe.report").scroll_into_view_if_needed()  # a lazy frame: load it
    report = page.frame_locator("iframe.report")
    assert f"{latest['rows']:,} rows" in report.locator(".meta").inner_text()
    assert report.locator("h2", has_text="Distributions").count() == 1
    page.click("#compare-version button")  # the previous version is preselected
    page.wait_for_load_state()
    assert "/data/diff/" in page.url and "30 removed" in page.inner_text("#diff-rows")
    assert watched.errors == [] and watched.remote == []
    watched.close()


def test_loop_page_shows_a_run_and_its_transitions(
    project: Path, server: str, browser: Any
) -> None:
    from datetime import UTC, datetime

    from mlcycle.loop.state import LoopStore
    from mlcycle.store import Store

    store = Store.open(project)
    run_id = LoopStore(store).create(
        "flights", trigger="manual", reason="ui test: retrain", decision={"act": True},
        at=datetime.now(UTC),
    )  # fmt: skip
    store.close()
    assert run_id is not None
    watched = Watched(browser)
    page = watched.page
    page.goto(server + "/loop")
    assert "in flight" in page.inner_text("#loop-state")
    row = page.locator("#loop-runs tbody tr").first.inner_text()
    assert "triggered" in row and "ui test: retrain" in row and "manual" in row
    page.click(f"#loop-runs a[href*='{run_id}']")
    page.wait_for_load_state()
    assert "transitions" in page.inner_text("#events") and "triggered" in page.inner_text("main")
    missing = page.goto(server + "/loop?model=flights&run=ffffffff")
    assert missing is not None and missing.status == 404
    assert watched.remote == []
    watched.close()


def test_loop_page_shows_rollbacks_and_the_backtest_report(
    project: Path, server: str, browser: Any
) -> None:
    from mlcycle.loop.backtest_report import render_html
    from mlcycle.registry.models import Registry
    from mlcycle.store import Store

    store = Store.open(project)
    Registry(store).set_alias(
        "flights", "canary", 1, reason="watch: p99 latency over budget", action="rollback",
        actor="loop",
    )  # fmt: skip
    store.close()
    windows = [
        {"window": w, "metric": m, "events": []} for w, m in (("2013-07", 0.7), ("2013-08", 0.68))
    ]
    windows[1]["events"] = [{"kind": "retrain", "version": 2, "blessed": True}]
    doc = {
        "project": "flights", "metric": "roc_auc", "window": "month", "default": "auto",
        "score_units": "metric × rows", "retrain_cost": 0.0, "seconds": 1.0, "pipeline": {},
        "policies": [{"name": "auto", "description": "the spec's policy", "score": 12.5,
                      "retrains": 1, "promotions": 0, "rollbacks": 0, "mean_metric": 0.69,
                      "windows": windows}],
    }  # fmt: skip
    (project / "backtest.html").write_text(render_html(doc), encoding="utf-8")
    watched = Watched(browser)
    page = watched.page
    page.goto(server + "/loop")
    row = page.locator("#loop-rollbacks tbody tr").first.inner_text()
    assert "canary" in row and "loop" in row and "p99 latency" in row
    frame = page.frame_locator("iframe.report")
    assert "Loop backtest — flights" in frame.locator("h1").inner_text()
    assert frame.locator("svg").count() >= 1
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "loop_backtest-1280.png"), full_page=True)
    assert watched.errors == [] and watched.remote == []
    watched.close()
