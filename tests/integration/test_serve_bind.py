"""`mlcycle serve` refuses a public bind without a prediction token unless told so."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from serve_fixtures import build_bundle

import mlcycle.serve.http as serve_http
from mlcycle.errors import BadInput
from mlcycle.serve.http.settings import PREDICT_TOKEN_ENV, check_bind, is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)
    assert check_bind(host, predict_token=None, allow_public=False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com"])
def test_public_hosts_need_a_token_or_an_explicit_yes(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(BadInput) as exc:
        check_bind(host, predict_token=None, allow_public=False)
    assert "--allow-public" in str(exc.value) and PREDICT_TOKEN_ENV in str(exc.value)
    assert check_bind(host, predict_token="s3cret", allow_public=False) is None
    warning = check_bind(host, predict_token=None, allow_public=True)
    assert warning is not None and "without a prediction token" in warning


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bind") / "bundle", n=400)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Catch run_workers (no server starts); restore the environment the CLI fills."""
    calls: list[Any] = []
    monkeypatch.setattr(serve_http, "run_workers", lambda *a, **k: calls.append(a))
    monkeypatch.delenv(PREDICT_TOKEN_ENV, raising=False)
    saved = dict(os.environ)
    yield calls
    os.environ.clear()
    os.environ.update(saved)


def _serve(bundle: Path, *args: str) -> Any:
    from mlcycle.cli.main import app

    return CliRunner().invoke(app, ["serve", str(bundle), "--no-log", *args])


def test_cli_refuses_a_public_bind_without_a_token(bundle: Path, started: list[Any]) -> None:
    done = _serve(bundle, "--host", "0.0.0.0")
    assert done.exit_code == 2, done.output
    assert "mlcycle:" in done.output and "--allow-public" in done.output
    assert started == []


def test_cli_serves_public_when_told_and_says_so(bundle: Path, started: list[Any]) -> None:
    done = _serve(bundle, "--host", "0.0.0.0", "--allow-public")
    assert done.exit_code == 0, done.output
    assert "without a prediction token" in done.output
    assert len(started) == 1


def test_cli_serves_public_with_a_token(
    bundle: Path, started: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PREDICT_TOKEN_ENV, "s3cret")
    done = _serve(bundle, "--host", "0.0.0.0")
    assert done.exit_code == 0, done.output
    assert "without a prediction token" not in done.output


def test_cli_serves_loopback_quietly(bundle: Path, started: list[Any]) -> None:
    done = _serve(bundle)
    assert done.exit_code == 0, done.output
    assert "warning" not in done.output and len(started) == 1
