"""The shape of the code, as docs/architecture.md states it, checked from the source.

Each rule here is a claim of the architecture document; a change that breaks
one must either restore the rule or change the document (and this test) on
purpose. Imports are read with ``ast`` from every module of ``src/mlcycle``,
including imports inside functions and under ``TYPE_CHECKING``: a circle that
only closes at run time is still a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "mlcycle"

STAGES = ("data", "prep", "train", "evaluate", "registry", "serve", "monitor")
# Below every stage: what stages share. None of these may import a stage, the
# pipeline, the loop, the CLI or the UI.
FOUNDATION = (
    "mlcycle.store",
    "mlcycle.bundle",
    "mlcycle.predlog",
    "mlcycle.profiles",
    "mlcycle.preprocessing",
    "mlcycle.artifacts",
    "mlcycle.schema",
    "mlcycle.spec",
    "mlcycle.errors",
    "mlcycle.gitinfo",
    "mlcycle.version",
)
UPPER = ("pipeline", "loop", "cli", "ui")
# Every file name inside a model bundle; only the Bundle type may spell them.
BUNDLE_FILES = (
    "model.joblib",
    "meta.json",
    "schema.json",
    "profile.json",
    "reference.parquet",
    "outliers.joblib",
    "model.onnx",
    "evaluation.json",
    "blessing.json",
    "lineage.json",
    "MODEL_CARD.md",
)
MAX_FUNCTION_LINES = 90


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: set[str] = field(default_factory=set)
    private: list[str] = field(default_factory=list)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic scripts: loaded by Alembic, never imported
        found[_module_name(path)] = Module(
            _module_name(path), path, ast.parse(path.read_text(encoding="utf-8"))
        )
    for module in found.values():
        is_package = module.path.name == "__init__.py"
        package = module.name if is_package else module.name.rpartition(".")[0]
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in found:
                        module.imports.add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                if not base.startswith("mlcycle"):
                    continue
                for alias in node.names:
                    target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in found else base
                    if target in found and target != module.name:
                        module.imports.add(target)
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and target != module.name:
                        module.private.append(f"{module.name} takes {base}.{alias.name}")
    return found


def _area(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_no_import_circles() -> None:
    graph = {name: module.imports for name, module in modules().items()}
    assert _cycles(graph) == []


def test_a_stage_never_imports_another_stage() -> None:
    crossings = [
        f"{name} imports {target}"
        for name, module in modules().items()
        if _area(name) in STAGES
        for target in module.imports
        if _area(target) in STAGES and _area(target) != _area(name)
    ]
    assert crossings == []


def test_the_loop_reaches_stages_only_through_the_pipeline() -> None:
    # cli/ui -> loop -> pipeline -> stages: what the loop asks of a stage is named in
    # pipeline/stage_ops.py, so the loop's needs from the stages are one short list.
    crossings = [
        f"{name} imports {target}"
        for name, module in modules().items()
        if _area(name) == "loop"
        for target in module.imports
        if _area(target) in STAGES
    ]
    assert crossings == []


def test_the_foundation_imports_no_stage_and_nothing_above() -> None:
    upward = [
        f"{name} imports {target}"
        for name, module in modules().items()
        if name.startswith(FOUNDATION)
        for target in module.imports
        if _area(target) in (*STAGES, *UPPER)
    ]
    assert upward == []


def test_stages_do_not_import_the_pipeline_or_anything_above() -> None:
    upward = [
        f"{name} imports {target}"
        for name, module in modules().items()
        if _area(name) in STAGES
        for target in module.imports
        if _area(target) in UPPER
    ]
    assert upward == []


def test_no_private_names_cross_modules_in_serve_and_few_elsewhere() -> None:
    everything = [p for module in modules().values() for p in module.private]
    in_serve = [p for p in everything if p.startswith("mlcycle.serve")]
    assert in_serve == []
    assert len(everything) <= 5, everything


def test_only_the_bundle_module_and_the_catalog_spell_bundle_file_names() -> None:
    spelled = sorted(
        name
        for name, module in modules().items()
        if any(
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and any(node.value == f or node.value.endswith("/" + f) for f in BUNDLE_FILES)
            for node in ast.walk(module.tree)
        )
    )
    assert len(spelled) <= 2, spelled
    assert "mlcycle.bundle" in spelled


def test_no_function_is_longer_than_a_person_holds_in_mind() -> None:
    long = [
        f"{module.path.relative_to(SRC)}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1})"
        for module in modules().values()
        for fn in _functions(module.tree)
        if fn.end_lineno is not None and fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_pipeline_steps_stay_declarations() -> None:
    steps = PACKAGE / "pipeline" / "steps"
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in steps.rglob("*.py"))
    assert lines <= 650, f"pipeline/steps/ holds {lines} lines: stage logic belongs in a stage"


@pytest.mark.parametrize(
    "package",
    # mlcycle.serve imports its subpackages lazily: each is checked on its own.
    [
        "mlcycle.serve",
        "mlcycle.serve.http",
        "mlcycle.serve.batch",
        "mlcycle.monitor",
        "mlcycle.bundle",
    ],
)
def test_serving_and_monitoring_import_without_training_libraries(package: str) -> None:
    code = (
        f"import sys, {package}\n"
        "heavy = sorted(m for m in ('optuna', 'lightgbm') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""


def test_the_checks_see_a_circle_and_a_crossing_when_there_is_one() -> None:
    # The rules above pass on the real tree; make sure they would fail on a bad one.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert _area("mlcycle.serve.http.app") == "serve"


def test_the_cli_starts_without_the_data_stack() -> None:
    # `mlcycle --help` must start in a fraction of a second: a command module
    # imports pandas, SQLAlchemy or scikit-learn inside the command, not on import.
    code = (
        "import sys, mlcycle.cli.main\n"
        "heavy = ('pandas', 'sqlalchemy', 'sklearn', 'pyarrow', 'numpy', 'pydantic')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""
