"""The dashboard's app without a browser: declared scopes, tokens, CSRF, the runs filter,
sorting and paging, escaping, and 404 pages — against a real (untrained) project store."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from mlcycle.errors import BadInput, StepFailed
from mlcycle.examples import EXAMPLES
from mlcycle.pipeline.project import Project
from mlcycle.train.tracking import Tracker
from mlcycle.ui import AccessPolicy, check_binding, create_app, readers, route_scope
from mlcycle.ui.app import all_pages
from mlcycle.ui.security import CSRF_COOKIE, SCOPES, SESSION_COOKIE, allows

RUNS = 30


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A flights project (1% sample, never trained) whose store holds 30 tracked runs and
    two dataset versions: a valid one, then one with 100 rows gone and 50 new ones, one
    of them with an unknown `dest` (quarantined). About a second in all."""
    folder = tmp_path_factory.mktemp("ui") / "proj"
    EXAMPLES["flights"](folder, sample=0.01)
    loaded = Project.load(folder)
    loaded.run(until="validate")
    data = folder / "data"
    rows, future = (
        pd.read_parquet(data / "flights.parquet"),
        pd.read_parquet(data / "flights_future.parquet"),
    )
    pd.concat([rows.iloc[100:], future.iloc[:50]]).to_parquet(data / "flights.parquet", index=False)
    with pytest.raises(StepFailed, match="quarantined"):
        loaded.run(until="validate")
    tracker = Tracker(loaded.store, flush_interval=60)
    for i in range(RUNS):
        name = "<script>alert(1)</script>" if i == 7 else f"run-{i:02d}"
        with tracker.start_run(name, experiment="grid" if i % 2 else "other") as run:
            run.log_params({"family": "hgb" if i % 3 == 0 else "lr", "i": i})
            for step in range(3):
                run.log_metric("auc", i / 100 + step / 1000, step=step)
            run.set_tags({"role": "trial"})
    tracker.flush()
    tracker.close()
    yield loaded
    loaded.close()


def client(project: Project, **tokens: str) -> TestClient:
    return TestClient(create_app(project, AccessPolicy(**tokens)), follow_redirects=False)


def csrf_of(c: TestClient) -> str:
    """The CSRF value a rendered page hands out (cookie and hidden field are the same)."""
    page = c.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    assert c.cookies.get(CSRF_COOKIE) == match.group(1)
    return match.group(1)


# --- scopes ------------------------------------------------------------------------------


def test_every_route_declares_a_scope(project: Project) -> None:
    app = create_app(project, AccessPolicy())
    scopes = {getattr(r, "path", "?"): route_scope(r) for r in app.routes}
    assert all(s in SCOPES for s in scopes.values()), scopes
    assert scopes["/models/{name}/promote"] == "write"
    assert scopes["/static"] == "public" and scopes["/runs"] == "read"
    # The check sees a route that declares nothing.
    assert route_scope(Route("/bare", lambda request: None)) is None


def test_write_routes_are_posts_only() -> None:
    for page in all_pages():
        if page.scope == "write":
            assert page.methods == ("POST",), page.path


def test_scope_order() -> None:
    assert allows("write", "read") and allows("read", "read") and not allows("read", "write")
    assert not allows(None, "read") and allows(None, "public")
    with pytest.raises(ValueError):
        allows("write", "admin")


# --- tokens and sessions -------------------------------------------------------------------


def test_open_binding_only_on_loopback() -> None:
    check_binding("127.0.0.1", None, None)
    check_binding("::1", None, None)
    check_binding("0.0.0.0", "w", None)
    with pytest.raises(BadInput, match="without a token"):
        check_binding("0.0.0.0", None, None)
    with pytest.raises(BadInput, match="--read-token needs --token"):
        check_binding("127.0.0.1", None, "r")


def test_tokens_guard_reads_and_writes(project: Project) -> None:
    c = client(project, write_token="w-token", read_token="r-token")
    anonymous = c.get("/runs?filter=x")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Fruns%3Ffilter%3Dx"
    assert c.get("/runs", headers={"authorization": "Bearer nope"}).status_code == 401
    assert c.get("/runs", headers={"authorization": "Bearer r-token"}).status_code == 200
    assert c.get("/static/ui.css").status_code == 200  # public
    c.headers["authorization"] = "Bearer r-token"
    token = csrf_of(c)
    denied = c.post("/models/flights/rollback", data={"csrf_token": token, "reason": "x"})
    assert denied.status_code == 403 and "needs the write scope" in denied.text
    c.headers["authorization"] = "Bearer w-token"
    allowed = c.post("/models/flights/rollback", data={"csrf_token": token, "reason": "x"})
    # Past the guard: the registry answers (no such model yet), as a page, not a 500.
    assert allowed.status_code == 404 and "no registered model named" in allowed.text


def test_login_sets_a_signed_session(project: Project) -> None:
    c = client(project, write_token="w-token", read_token="r-token")
    token = csrf_of(c)
    wrong = c.post("/login", data={"csrf_token": token, "token": "bad", "next": "/data"})
    assert wrong.status_code == 401 and SESSION_COOKIE not in wrong.cookies
    ok = c.post("/login", data={"csrf_token": token, "token": "r-token", "next": "/data"})
    assert ok.status_code == 303 and ok.headers["location"] == "/data"
    session = ok.cookies[SESSION_COOKIE]
    assert "r-token" not in session and session.startswith("read.")
    assert c.get("/data").status_code == 200
    _scope, expires, signature = session.split(".")
    c.cookies.set(SESSION_COOKIE, f"write.{expires}.{signature}")  # a forged upgrade
    assert c.get("/data").status_code == 303
    policy = AccessPolicy(write_token="w")
    stale = policy.new_session("read", now=time.time() - 13 * 3600)
    assert policy.scope_of_session(stale) is None
    off_site = c.post("/login", data={"csrf_token": token, "token": "r-token", "next": "//x.org"})
    assert off_site.headers["location"] == "/"
    backslash = c.post("/login", data={"csrf_token": token, "token": "r-token", "next": "/\\x.org"})
    assert backslash.headers["location"] == "/"


# --- CSRF ----------------------------------------------------------------------------------


def test_posts_need_the_pages_csrf_token(project: Project) -> None:
    c = client(project)  # open (loopback): every request may write, CSRF still applies
    token = csrf_of(c)
    form = {"reason": "because", "version": "1"}
    missing = c.post("/models/flights/promote", data=form)
    assert missing.status_code == 403 and "security token" in missing.text
    other = AccessPolicy().new_csrf()  # well formed, but signed by another server
    c.cookies.set(CSRF_COOKIE, other)
    forged = c.post("/models/flights/promote", data={**form, "csrf_token": other})
    assert forged.status_code == 403
    c.cookies.set(CSRF_COOKIE, token)
    mismatch = c.post("/models/flights/promote", data={**form, "csrf_token": token + "0"})
    assert mismatch.status_code == 403
    passed = c.post("/models/flights/promote", data={**form, "csrf_token": token})
    assert passed.status_code == 404  # the guard let it through to the registry


def test_promote_needs_a_reason(project: Project) -> None:
    c = client(project)
    token = csrf_of(c)
    blank = c.post("/models/flights/promote", data={"csrf_token": token, "version": "1"})
    assert blank.status_code == 400 and "a reason is required" in blank.text


# --- runs table ----------------------------------------------------------------------------


def names_in(html: str) -> list[str]:
    return re.findall(r'<td><a href="/runs/[0-9a-f]+">([^<]+)</a></td>', html)


def test_runs_filter_uses_the_search_language(project: Project) -> None:
    c = client(project)
    page = c.get("/runs", params={"filter": "metrics.auc > 0.2 and params.family = 'hgb'"})
    assert page.status_code == 200
    expected = {f"run-{i:02d}" for i in range(RUNS) if i % 3 == 0 and i / 100 + 0.002 > 0.2}
    assert set(names_in(page.text)) == expected
    grid = c.get("/runs", params={"experiment": "grid", "limit": "100"})
    assert len(names_in(grid.text)) == RUNS // 2
    bad = c.get("/runs", params={"filter": "metrics.auc > 'high'"})
    assert bad.status_code == 400 and "metrics are numbers" in bad.text


def test_runs_sort_and_pages(project: Project) -> None:
    c = client(project)
    asc = c.get(
        "/runs", params={"order": "metrics.auc asc", "limit": "25", "filter": "name != 'x'"}
    )
    names = names_in(asc.text)
    assert names[:3] == ["run-00", "run-01", "run-02"] and len(names) == 25
    assert 'rel="next"' in asc.text and 'rel="prev"' not in asc.text
    nxt = re.search(r'<a href="([^"]+)" rel="next">', asc.text)
    assert nxt
    second = c.get(nxt.group(1).replace("&amp;", "&"))
    assert names_in(second.text) == [f"run-{i:02d}" for i in range(25, RUNS)]
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
    desc = c.get("/runs", params={"order": "metrics.auc desc", "m": "auc"})
    assert names_in(desc.text)[0] == f"run-{RUNS - 1}"
    # The sort link of the current column flips its direction.
    assert "order=metrics.auc+asc" in desc.text
    chosen = c.get("/runs", params={"p": "family", "t": "role"})
    assert "<th>params.family</th>" in chosen.text and "<td>trial</td>" in chosen.text
    assert c.get("/runs", params={"limit": "7"}).status_code == 400


def test_names_are_escaped(project: Project) -> None:
    page = client(project).get("/runs", params={"limit": "100"})
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_run_page_and_compare(project: Project) -> None:
    c = client(project)
    listing = c.get("/runs", params={"order": "metrics.auc desc", "limit": "25"})
    ids = re.findall(r'name="id" value="([0-9a-f]+)"', listing.text)[:2]
    run = c.get(f"/runs/{ids[0][:10]}")
    assert run.status_code == 200 and "<svg" in run.text and "3 point(s)" in run.text
    both = c.get("/runs/compare", params=[("id", ids[0]), ("id", ids[1])])
    assert both.status_code == 200 and both.text.count("<polyline") == 2
    assert 'class="differs"' in both.text  # their auc and i differ
    one = c.get("/runs/compare", params={"id": ids[0]})
    assert one.status_code == 400 and "2 to 8 runs" in one.text


# --- errors are pages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/models/nope", "/models/nope/3", "/runs/ffffffffff", "/data/abcdef0123",
     "/lineage/abcdef0123", "/lineage/nope@champion", "/no/such/page", "/monitor?model=nope"],
)  # fmt: skip
def test_missing_things_are_404_pages(project: Project, path: str) -> None:
    page = client(project).get(path)
    assert page.status_code == 404, page.text[:300]
    assert page.headers["content-type"].startswith("text/html") and "<h1>404" in page.text


def test_empty_project_pages_render(project: Project) -> None:
    c = client(project)
    for path in ("/", "/models", "/pipeline", "/data", "/monitor"):
        page = c.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert 'href="/static/ui.css"' in page.text


def test_static_files_ship_with_the_package() -> None:
    here = Path(__file__).resolve().parents[3] / "src" / "mlcycle" / "ui"
    assert (here / "static" / "ui.css").is_file() and (here / "templates" / "base.html").is_file()


def test_keyset_pages_cover_every_run_once_across_tied_start_times(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from mlcycle.store import Store
    from mlcycle.store import tables as t
    from mlcycle.train.tracking import query
    from mlcycle.ui import readers

    store = Store.open(tmp_path)
    tracker = Tracker(store, flush_interval=60)
    for i in range(60):
        with tracker.start_run(f"r{i}"):
            pass
    tracker.flush()
    tracker.close()
    ids = sorted(v.id for v in query.search_runs(store.engine, limit=100, details=False))
    with store.engine.begin() as conn:  # ties that straddle page boundaries
        for n, run_id in enumerate(ids):
            when = 100.0 if n < 40 else 50.0 + n % 3
            conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(start_time=when))
    for order in ("start_time desc", "start_time asc"):
        expected = [v.id for v in query.search_runs(store.engine, order_by=order, limit=100)]
        seen: list[str] = []
        q = readers.RunQuery(order_by=order, limit=25)
        while True:
            page = readers.runs_page(store, q)
            seen += [r["id"] for r in page.rows]
            if not page.has_next:
                break
            assert page.next_after
            q = readers.RunQuery(order_by=order, limit=25, after=page.next_after)
        assert seen == expected, order
    with pytest.raises(BadInput, match="page cursor"):
        readers.runs_page(store, readers.RunQuery(after="soon:1"))
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.runs)).scalar() == 60
    store.close()


def test_the_command_refuses_an_open_ui_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mlcycle.cli.main import app

    monkeypatch.delenv("MLCYCLE_UI_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "refusing to serve the UI on 0.0.0.0 without a token" in result.output


# --- data: diffs and the report ----------------------------------------------------------


def versions_of(c: TestClient) -> tuple[str, str]:
    """(the first dataset version, the second), from the diff link on /data."""
    found = re.findall(r'href="/data/diff/([0-9a-f]{64})/([0-9a-f]{64})"', c.get("/data").text)
    assert len(found) == 1, found
    return found[0]


def test_data_diff_counts_rows_and_marks_moved_columns(project: Project) -> None:
    c = client(project)
    old, new = versions_of(c)
    page = c.get(f"/data/diff/{old[:10]}/{new[:10]}")
    assert page.status_code == 200, page.text[:400]
    rows = re.sub(r"<[^>]+>", "", re.search(r'<p id="diff-rows">(.*?)</p>', page.text, re.S)[1])
    assert "50 added · 100 removed · 1492 kept" in rows and "flight_id" in rows
    assert "The schema did not change." in page.text
    changed = set(re.findall(r'<tr class="changed"><td>([a-z_]+)', page.text))
    # The 50 new rows are August's: month moved, year (2013 throughout) did not.
    assert "month" in changed and "year" not in changed
    assert "invalid" in page.text and "MVY" in page.text  # the quarantined side, and why
    swapped = c.get(f"/data/diff/{new}/{old}").text
    assert "100 added · 50 removed · 1492 kept" in re.sub(r"<[^>]+>", "", swapped)
    compare = c.get(f"/data/{new}", params={"vs": old[:12]})
    assert compare.status_code == 303
    assert compare.headers["location"] == f"/data/diff/{old[:12]}/{new}"
    same = c.get(f"/data/diff/{old}/{old[:8]}")
    assert same.status_code == 400 and "compared with itself" in same.text
    assert c.get(f"/data/diff/{old}/abcdef0123").status_code == 404


def test_a_versions_page_offers_the_diff_and_its_full_report(project: Project) -> None:
    c = client(project)
    old, new = versions_of(c)
    page = c.get(f"/data/{new}").text
    assert f'<option value="{old}" selected>' in page  # the previous version, preselected
    assert f'<iframe class="report" src="/data/{new}/report"' in page and 'sandbox=""' in page
    report = c.get(f"/data/{new}/report")
    assert report.status_code == 200 and report.text.startswith("<!doctype html>")
    assert "default-src 'none'" in report.headers["content-security-policy"]
    assert "Distributions" in report.text and "MVY" in report.text  # with its validation
    assert "<script" not in report.text
    assert c.get("/data/abcdef0123/report").status_code == 404


# --- the typed readers ---------------------------------------------------------------------


def test_the_listings_are_typed_and_read_what_the_pages_show(project: Project) -> None:
    from mlcycle.store import listings

    store = project.store
    versions = listings.dataset_versions(store)
    assert [(v.rows, v.status) for v in versions] == [(1542, "invalid"), (1592, "valid")]
    assert "MVY" in (versions[0].reason or "") and versions[1].reason is None
    assert listings.dataset_versions(store, [versions[1].id]) == [versions[1]]
    report = listings.validation_of(store, versions[0].id)
    assert report == versions[0].validation_id and store.kind(report) == "validation"
    runs = listings.pipeline_runs(store, 5)
    assert [r.status for r in runs] == ["failed", "succeeded"]
    assert [s.step for s in runs[0].steps] == ["ingest", "validate"]
    failed = runs[0].steps[-1]
    assert failed.status == "failed" and "quarantined" in (failed.error or "")
    assert runs[1].steps[0].artifacts["dataset"] == versions[1].id
    assert listings.experiments(store) == ["grid", "other"]
    some = [r["id"] for r in readers.runs_page(store, readers.RunQuery(limit=25)).rows[:2]]
    values = listings.run_values(store, some)
    assert set(values) == set(some) and all(v.tags["role"] == "trial" for v in values.values())
    assert all(set(v.metrics) == {"auc"} and "family" in v.params for v in values.values())
    assert listings.run_values(store, []) == {}
    assert listings.monitored_models(store) == [] and listings.monitor_windows(store, "x") == []


# --- prediction lineage ---------------------------------------------------------------------


def test_prediction_lineage_shows_the_logged_rows_and_who_made_them(project: Project) -> None:
    from mlcycle.predlog import predictions_root, write_predictions

    rows = pd.DataFrame(
        {
            "request_id": ["req-ui-1", "req-ui-1", "req-ui-2"],
            "ts": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-01-02"], utc=True),
            "model": "elsewhere",
            "model_version": 4,
            "role": "champion",
            "dep_delay": [3.0, 250.0, 1.0],
            "row_id": ["a", "b", "c"],
            "prediction": ["False", "True", "False"],
        }
    )
    write_predictions(predictions_root(project.store.home), "elsewhere", rows)
    c = client(project)
    page = c.get("/lineage/prediction:req-ui-1")
    assert page.status_code == 200, page.text[:400]
    assert "Lineage of request req-ui-1" in page.text and "2 logged row(s)" in page.text
    assert "elsewhere v4 (champion)" in page.text and "not registered in this project" in page.text
    assert 'href="/lineage/prediction:req-ui-1/b"' in page.text  # each row traced on its own
    assert (
        'data-node="prediction:req-ui-1"' in page.text
        and 'data-node="model:elsewhere/4"' in page.text
    )
    one = c.get("/lineage/prediction:req-ui-1/b")
    assert one.status_code == 200 and "row b of request req-ui-1" in one.text
    assert "1 logged row(s)" in one.text and "250" in one.text and ">3<" not in one.text
    missing_row = c.get("/lineage/prediction:req-ui-1/zz")
    assert missing_row.status_code == 404 and "no row with row id" in missing_row.text
    assert c.get("/lineage/prediction:no-such-request").status_code == 404
    empty = c.get("/lineage/prediction:")
    assert empty.status_code == 400 and "needs a request id" in empty.text


# --- who acted ------------------------------------------------------------------------------


def test_the_actor_is_the_tokens_name_or_the_local_user(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcycle.registry.models import Registry

    monkeypatch.setenv("MLCYCLE_ACTOR", "local-ana")
    assert AccessPolicy().actor() == "local-ana"
    assert AccessPolicy(write_token="w", token_name="team-bot").actor() == "team-bot"
    seen: list[tuple[str, str | None]] = []
    monkeypatch.setattr(
        Registry, "promote", lambda self, *a, **kw: seen.append(("promote", kw.get("actor")))
    )
    monkeypatch.setattr(
        Registry,
        "rollback",
        lambda self, *a, **kw: seen.append(("rollback", kw.get("actor"))) or (2, 1),
    )
    form = {"version": "1", "reason": "why not"}
    shared = client(project, write_token="w", token_name="team-bot")
    shared.headers["authorization"] = "Bearer w"
    token = csrf_of(shared)
    assert shared.post("/models/m/promote", data={**form, "csrf_token": token}).status_code == 303
    assert shared.post("/models/m/rollback", data={**form, "csrf_token": token}).status_code == 303
    local = client(project)
    token = csrf_of(local)
    assert local.post("/models/m/promote", data={**form, "csrf_token": token}).status_code == 303
    assert seen == [("promote", "team-bot"), ("rollback", "team-bot"), ("promote", "local-ana")]


# --- the loop's backtest ----------------------------------------------------------------------


def test_the_loop_page_shows_the_latest_backtest_or_how_to_make_one(project: Project) -> None:
    c = client(project)
    page = c.get("/loop")
    assert page.status_code == 200 and 'id="no-backtest"' in page.text
    assert "mlcycle loop backtest" in page.text
    missing = c.get("/loop/backtest")
    assert missing.status_code == 404 and "no backtest report yet" in missing.text
    written = project.base_dir / "backtest.html"
    written.write_text("<!doctype html><h1>Loop backtest — flights</h1>", encoding="utf-8")
    try:
        page = c.get("/loop")
        assert '<iframe class="report" src="/loop/backtest"' in page.text
        assert str(written) in page.text
        report = c.get("/loop/backtest")
        assert report.status_code == 200 and "Loop backtest — flights" in report.text
        assert "default-src 'none'" in report.headers["content-security-policy"]
    finally:
        written.unlink()
