"""`mlcycle init --ci github`: the workflow it writes, its gate logic, and the serving Dockerfiles.

actionlint and hadolint (both in the dev extra) lint what is written, with no
finding allowed. The gate step's script is taken from the written workflow and
run on the ``mlcycle run --json`` documents a blessed, a refused and an
outranked model produce, so what decides the push is tested, not just present.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mlcycle.cli.main import app
from mlcycle.templates_ci import RUNTIME_STAGE, ci_files, image_name

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DOCKERFILE = ROOT / "deploy" / "Dockerfile"
WORKFLOW = ".github/workflows/mlcycle.yml"


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.is_file():
        pytest.fail(f"{name} is not in {path.parent}: install the dev extra (make install)")
    return str(path)


def init(*args: str) -> Any:
    return CliRunner().invoke(app, ["init", *args])


SPEC = "project: Churn_Model\n# mine\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An existing project: only a spec (init --ci must leave it alone)."""
    (tmp_path / "mlcycle.yaml").write_text(SPEC, encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    text = ci_files("github", project="flights")[WORKFLOW]
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


# --- what init --ci writes -----------------------------------------------------------------


def test_init_ci_on_an_existing_project_adds_only_the_ci_files(project: Path) -> None:
    result = init(str(project), "--ci", "github")
    assert result.exit_code == 0, result.output
    assert (project / "mlcycle.yaml").read_text(
        encoding="utf-8"
    ) == "project: Churn_Model\n# mine\n"
    written = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert written == [
        ".github/workflows/mlcycle.yml",
        "deploy/.gitignore",
        "deploy/Dockerfile",
        "mlcycle.yaml",
    ]
    # The image is named after the spec's project, in the lower case registries require.
    text = (project / WORKFLOW).read_text(encoding="utf-8")
    assert "images: ghcr.io/${{ github.repository }}/churn_model" in text
    dockerfile = (project / "deploy/Dockerfile").read_text(encoding="utf-8")
    assert '"mlcycle[serve]==' in dockerfile and "@@" not in dockerfile + text


def test_the_written_workflow_passes_actionlint(project: Path) -> None:
    assert init(str(project), "--ci", "github").exit_code == 0
    result = subprocess.run(
        [tool("actionlint"), "-no-color", str(project / WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_init_ci_never_overwrites_without_force(project: Path) -> None:
    (project / "deploy").mkdir()
    (project / "deploy/Dockerfile").write_text("FROM mine\n", encoding="utf-8")
    result = init(str(project), "--ci", "github")
    assert result.exit_code == 2
    assert "deploy/Dockerfile already exists" in result.output and "--force" in result.output
    # Refused before anything was written: the other files are not there either.
    assert not (project / ".github").exists()
    assert (project / "deploy/Dockerfile").read_text(encoding="utf-8") == "FROM mine\n"
    assert init(str(project), "--ci", "github", "--force").exit_code == 0
    assert "HEALTHCHECK" in (project / "deploy/Dockerfile").read_text(encoding="utf-8")
    assert (project / "mlcycle.yaml").read_text(encoding="utf-8") == SPEC


def test_init_data_with_ci_writes_the_spec_and_the_ci_files_in_one_json(tmp_path: Path) -> None:
    rows = "".join(f"{20 + i % 50},{'ab'[i % 2]},{i % 3 == 0}\n" for i in range(200))
    (tmp_path / "c.csv").write_text("age,plan,churned\n" + rows, encoding="utf-8")
    folder = tmp_path / "churn"
    args = ["--data", str(tmp_path / "c.csv"), "--target", "churned", "--ci", "github", "--json"]
    result = init(str(folder), *args)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)  # one document: a script reads it whole
    assert answer["task"] == "binary" and answer["ci"] == "github"
    assert sorted(Path(p).name for p in answer["ci_files"]) == [
        ".gitignore",
        "Dockerfile",
        "mlcycle.yml",
    ]
    assert "ghcr.io/${{ github.repository }}/churn" in (folder / WORKFLOW).read_text(
        encoding="utf-8"
    )


def test_init_ci_refuses_an_unknown_provider_and_writes_nothing(project: Path) -> None:
    result = init(str(project), "--ci", "gitlab")
    assert result.exit_code == 2
    assert "'gitlab' is not supported" in result.output and "--ci github" in result.output
    assert sorted(p.name for p in project.iterdir()) == ["mlcycle.yaml"]


def test_image_names_are_lower_case_registry_names() -> None:
    assert image_name("Churn Model") == "churn-model"
    assert image_name("__") == "model"


# --- the gate decides --------------------------------------------------------------------


def test_the_push_job_needs_the_gated_job_and_runs_only_for_a_champion(
    workflow: dict[str, Any],
) -> None:
    jobs = workflow["jobs"]
    train, image = jobs["train"], jobs["image"]
    assert image["needs"] == "train"
    condition = image["if"]
    assert "needs.train.outputs.champion == 'true'" in condition
    assert "github.event_name != 'pull_request'" in condition
    assert train["outputs"]["champion"] == "${{ steps.gate.outputs.champion }}"
    ids = [step.get("id") for step in train["steps"]]
    names = [step.get("name") for step in train["steps"]]
    assert ids.index("gate") == names.index("mlcycle run") + 1
    # Only the image job may write packages, and it pushes only after the container was healthy.
    assert "packages" not in workflow["permissions"] and "permissions" not in train
    assert image["permissions"]["packages"] == "write"
    steps = image["steps"]
    push = next(i for i, s in enumerate(steps) if s.get("with", {}).get("push") is True)
    healthy = next(i for i, s in enumerate(steps) if s.get("name") == "Start it until healthy")
    assert healthy < push
    assert steps[push]["uses"].startswith("docker/build-push-action@")


def test_every_action_is_pinned_to_a_release(workflow: dict[str, Any]) -> None:
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+){0,2}", u) for u in uses), uses


def run_gate(
    workflow: dict[str, Any], tmp_path: Path, run: dict[str, Any], **env: str
) -> tuple[int, dict[str, str], str]:
    """Run the workflow's gate step, as GitHub would (``shell: python``), on ``run``."""
    step = next(s for s in workflow["jobs"]["train"]["steps"] if s.get("id") == "gate")
    assert step["shell"] == "python"
    (tmp_path / "run.json").write_text(json.dumps(run), encoding="utf-8")
    script = tmp_path / "gate.py"
    script.write_text(step["run"], encoding="utf-8")
    outputs, summary = tmp_path / "out", tmp_path / "summary"
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary)}
        | env,
    )
    pairs = outputs.read_text(encoding="utf-8").splitlines() if outputs.exists() else []
    return result.returncode, dict(p.split("=", 1) for p in pairs), result.stdout


def run_json(
    blessed: bool, promote: str, champion: int | None, note: str | None = None
) -> dict[str, Any]:
    """The parts of ``mlcycle run --json`` the gate reads (shapes as the steps report them)."""
    summary: dict[str, Any] = {} if promote == "skipped" else {"champion": champion}
    if note:
        summary["note"] = note
    return {
        "outputs": {"bundle": "ab" * 32},
        "steps": [
            {"step": "gate", "status": "ran", "summary": {"blessed": blessed, "failed": []}},
            {"step": "register", "status": "ran", "summary": {"model": "m", "version": 3}},
            {"step": "promote", "status": promote, "summary": summary},
        ],
    }


@pytest.mark.parametrize(
    ("run", "champion"),
    [
        (run_json(True, "ran", 3), "true"),
        (run_json(True, "cached", 3), "true"),  # re-run: still the champion, image rebuilt
        (run_json(False, "skipped", None), "false"),
        (run_json(True, "ran", 2, note="champion moved meanwhile; not promoted"), "false"),
    ],
    ids=["promoted", "still-champion", "not-blessed", "outranked"],
)
def test_the_gate_step_decides_from_the_run(
    workflow: dict[str, Any], tmp_path: Path, run: dict[str, Any], champion: str
) -> None:
    code, outputs, stdout = run_gate(workflow, tmp_path, run)
    assert code == 0, stdout
    assert outputs == {"champion": champion, "model": "m", "version": "3", "bundle": "ab" * 32}
    assert ("::warning" in stdout) == (champion == "false")


def test_a_refused_model_can_fail_the_job(workflow: dict[str, Any], tmp_path: Path) -> None:
    run = run_json(False, "skipped", None)
    run["steps"][0]["summary"]["failed"] = ["roc_auc 0.61 < threshold 0.7"]
    code, outputs, stdout = run_gate(workflow, tmp_path, run, FAIL_WHEN_NOT_BLESSED="true")
    assert code == 1 and outputs["champion"] == "false"
    assert "not blessed (roc_auc 0.61 < threshold 0.7)" in stdout


# --- the serving Dockerfiles -------------------------------------------------------------


def dockerfiles() -> dict[str, str]:
    return {
        "template": ci_files("github", project="flights")["deploy/Dockerfile"],
        "deploy/Dockerfile": DEPLOY_DOCKERFILE.read_text(encoding="utf-8"),
    }


@pytest.mark.parametrize("which", ["template", "deploy/Dockerfile"])
def test_the_serving_dockerfiles_pass_hadolint(which: str) -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "-"],
        input=dockerfiles()[which],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_both_dockerfiles_share_the_runtime_stage_and_install_the_same_extras() -> None:
    texts = dockerfiles()
    stages = {name: text[text.index(RUNTIME_STAGE) :] for name, text in texts.items()}
    assert stages["template"] == stages["deploy/Dockerfile"]
    runtime = stages["template"]
    assert re.search(r"^USER 10001:10001$", runtime, re.M)  # numeric, not root
    assert re.search(r"^HEALTHCHECK .*\n.*/v2/health/ready", runtime, re.M)
    # The bundle folder the store wrote is 0700: readable to the service only once opened up.
    assert re.search(r"^COPY bundle/ /srv/bundles/\nRUN chmod -R a\+rX", runtime, re.M)
    assert "COPY --from=bundle /srv/bundles /srv/bundles" in runtime
    requirement = re.search(r'ARG MLCYCLE_REQUIREMENT="mlcycle\[([\w,]+)\]==', texts["template"])
    assert requirement is not None
    sync = next(s for s in texts["deploy/Dockerfile"].splitlines() if s.startswith("RUN uv sync "))
    args = shlex.split(sync.rstrip("\\"))
    extras = {args[i + 1] for i, arg in enumerate(args) if arg == "--extra"}
    assert set(requirement.group(1).split(",")) == extras == {"serve"}
    # ONNX Runtime (not the converters) in both: it runs the bundle's parity-checked export.
    assert re.search(r'ARG ONNXRUNTIME_REQUIREMENT="onnxruntime[=>]=[\d.]+"', texts["template"])
    assert re.search(r"^ && uv pip install .* onnxruntime$", texts["deploy/Dockerfile"], re.M)
