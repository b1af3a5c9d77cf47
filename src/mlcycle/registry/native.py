"""Compile a bundle's tree ensemble to native code, refused unless it reproduces scikit-learn.

Treelite reads the fitted ensemble (HistGradientBoosting, random forests,
extra trees, gradient boosting, LightGBM), TL2cgen writes it as C (one nested ``if`` per
node), and the machine's C compiler builds ``<bundle>/native/model.so`` with
the row loop of :mod:`mlcycle.native`. The library scores the encoded matrix
(the same one the ONNX export takes) about 2.7× faster than ONNX Runtime on
the flights model, and with scikit-learn's own float64 comparisons, so it
agrees with scikit-learn to the last bits rather than to float32's 1e-7.

Nothing is written unless the library, loaded back, gives the pipeline's own
``predict_proba`` (``predict`` for regression) on the parity rows within
:data:`mlcycle.native.TOLERANCE`. The manifest records the platform, the
compiler, the parity report and a few check rows the loader re-scores before
it trusts the file on another machine.

This is a registration-time step: it needs ``mlcycle[native]`` (treelite,
tl2cgen) and a C compiler (``$CC``, else ``cc``/``gcc``/``clang``); serving
the library needs neither.

Example:
    >>> report = compile_bundle(Path("bundle"), test_split)
    >>> report["passed"], report["max_abs_diff"] < 1e-12
    (True, True)
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle import native
from mlcycle.bundle import NATIVE_LIB_FILE, NATIVE_MANIFEST_FILE, Bundle
from mlcycle.errors import BadInput
from mlcycle.hashing import hash_file
from mlcycle.registry.export import (
    HOLDOUT,
    atomic_folder,
    contract_rows,
    estimator_classes,
    parity_report,
    parity_rows,
)

logger = logging.getLogger("mlcycle.registry")

# The scikit-learn ensembles Treelite imports, by class name.
SUPPORTED = frozenset(
    {
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
    }
)
# LightGBM's scikit-learn estimators (the "lightgbm" family), read from their booster.
LIGHTGBM = frozenset({"LGBMClassifier", "LGBMRegressor"})
# HistGradientBoosting and LightGBM compare float64 inputs; scikit-learn's other trees
# cast the input to float32 first, so the library is fed float32-rounded values for them.
FLOAT64_INPUT = frozenset(
    {"HistGradientBoostingClassifier", "HistGradientBoostingRegressor", *LIGHTGBM}
)
# Generated C beyond this is not compiled: a forest of deep trees can reach gigabytes
# of source and hours of compiling (ONNX Runtime scores it instead).
MAX_SOURCE_BYTES = 64 << 20
COMPILE_TIMEOUT_S = 300
# -O1: on the flights model it compiles in 60 % of -O2's time and scores as fast.
CFLAGS = ("-O1", "-fPIC", "-std=c99")
CHECK_ROWS = 32


def compile_native(
    model: Any,
    rows: pd.DataFrame,
    out_dir: Path,
    *,
    task: str,
    rows_source: str = HOLDOUT,
) -> dict[str, Any]:
    """Compile ``model``'s estimator (``Pipeline([ColumnTransformer, ensemble])``) into ``out_dir``.

    ``rows`` are validated feature rows to check parity on. Raises
    :class:`BadInput` (and writes nothing) when the estimator is not a
    supported ensemble, the libraries or a C compiler are missing, the
    source is too large, compiling fails, or parity fails. Returns the
    parity report (with ``seconds``, the time the compile took).

    Example:
        >>> compile_native(pipeline, holdout, Path("bundle/native"), task="binary")["passed"]
        True
    """
    started = time.perf_counter()
    if len(rows) == 0:
        raise BadInput("cannot check the native model", "there are no parity rows", "pass rows")
    estimator = model.steps[-1][1]
    kind = type(estimator).__name__
    module = type(estimator).__module__
    if not (
        (kind in SUPPORTED and module.startswith("sklearn."))
        or (kind in LIGHTGBM and module.startswith("lightgbm."))
    ):
        raise BadInput(
            f"cannot compile a {kind} to native code",
            "only tree ensembles are compiled (" + ", ".join(sorted(SUPPORTED | LIGHTGBM)) + ")",
            "nothing to do: ONNX Runtime or scikit-learn scores this model",
        )
    compiler = find_compiler()
    matrix = np.asarray(model[:-1].transform(rows), dtype=np.float64)
    if kind not in FLOAT64_INPUT:
        matrix = matrix.astype(np.float32).astype(np.float64)
    with tempfile.TemporaryDirectory(prefix="mlcycle-native-") as tmp:
        library = _build(estimator, Path(tmp), compiler)
        lib = native.NativeLibrary(library)
        if lib.width != matrix.shape[1]:
            raise BadInput(
                "refusing the native model",
                f"it reads {lib.width} columns; the preprocessing makes {matrix.shape[1]}",
                "serve it with ONNX Runtime or scikit-learn",
            )
        raw = lib.predict(matrix)
        report = _parity(raw, model, rows, task)
        report["source"] = rows_source
        if not report["passed"]:
            raise BadInput(
                "refusing the native model",
                f"on {report['rows']} {rows_source} rows it differs from scikit-learn by up to "
                f"{_shown(report['max_abs_diff'])} (tolerance {native.TOLERANCE:g})",
                "serve it with ONNX Runtime or scikit-learn (they need no native code)",
            )
        report["seconds"] = round(time.perf_counter() - started, 3)
        check = slice(0, CHECK_ROWS)
        manifest = {
            "format": native.FORMAT,
            "platform": native.platform_tag(),
            "compiler": _compiler_version(compiler),
            "cflags": list(CFLAGS),
            "libraries": _versions(),
            "estimator": kind,
            "task": task,
            "estimator_classes": estimator_classes(estimator),
            # Checked before the file is loaded: loading a damaged library can crash the
            # process (a truncated one faults on first touch) instead of raising.
            "sha256": hash_file(library),
            "width": lib.width,
            "outputs": lib.outputs,
            "input_dtype": "float64" if kind in FLOAT64_INPUT else "float32",
            "parity": report,
            # Re-scored by the loader: a library that loads but computes otherwise here
            # (another C library, a damaged file) is not used.
            "check": {
                "rows": [[None if math.isnan(v) else v for v in r] for r in matrix[check].tolist()],
                "expected": raw[check].tolist(),
            },
        }
        with atomic_folder(Path(out_dir)) as folder:
            shutil.copyfile(library, folder / NATIVE_LIB_FILE)
            (folder / NATIVE_MANIFEST_FILE).write_text(
                json.dumps(manifest, indent=1), encoding="utf-8"
            )
    return report


def compile_bundle(
    bundle_dir: Path, rows: pd.DataFrame, *, rows_source: str = HOLDOUT
) -> dict[str, Any]:
    """:func:`compile_native` for a bundle folder, into ``<bundle>/native``.

    Rows with a null in a non-nullable feature are dropped first (the
    contract refuses them before any scorer sees them).

    Example:
        >>> compile_bundle(Path("bundle"), test_split)["passed"]
        True
    """
    bundle = Bundle(bundle_dir)
    return compile_native(
        bundle.load_model(),
        contract_rows(bundle, rows, "the native model"),
        bundle.native_dir,
        task=bundle.meta().task,
        rows_source=rows_source,
    )


def try_compile_bundle(
    bundle_dir: Path, holdout: pd.DataFrame | None = None
) -> dict[str, Any] | None:
    """:func:`compile_bundle` for registration: any failure is logged, never raised.

    Example:
        >>> try_compile_bundle(staging_folder, test_split)  # in the gate's package step
    """
    try:
        rows, source = parity_rows(bundle_dir, holdout)
        report = compile_bundle(bundle_dir, rows, rows_source=source)
    except BadInput as exc:
        logger.info("no native model in this bundle: %s (%s)", exc.what, exc.why)
        return None
    except Exception as exc:
        logger.warning("no native model in this bundle: %s: %s", type(exc).__name__, exc)
        return None
    logger.info(
        "compiled the model to native code in %.1f s (max |Δ| %.2g)",
        report["seconds"],
        report["max_abs_diff"],
    )
    return report


def find_compiler() -> str:
    """The C compiler to use: ``$CC``, else the first of cc, gcc, clang on ``PATH``.

    Example:
        >>> find_compiler()
        '/usr/bin/cc'
    """
    named = os.environ.get("CC")
    candidates = [named] if named else ["cc", "gcc", "clang"]
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    raise BadInput(
        "cannot compile the model to native code",
        f"no C compiler found ({'$CC=' + named if named else 'cc, gcc, clang'} not on PATH)",
        "install one (Debian: apt-get install gcc) or leave it: ONNX Runtime scores the model",
    )


def _build(estimator: Any, work: Path, compiler: str) -> Path:
    """TL2cgen's C for ``estimator`` plus the row loop, compiled to ``work/model.so``."""
    try:
        import tl2cgen
        import treelite
    except ImportError:
        raise BadInput(
            "cannot compile the model to native code",
            "treelite and tl2cgen are not installed",
            "pip install 'mlcycle[native]'",
        ) from None
    source = work / "src"
    cores = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    # Their C++ cores report through print(), warnings and straight to file descriptor 2
    # (e.g. "parallel compilation enabled", "model from a newer Treelite version": TL2cgen
    # embeds an older Treelite core, which reads the model it is given); that is noise
    # in `mlcycle run`, so it goes to the debug log.
    chatter = io.StringIO()
    try:
        with (
            _stderr_to(chatter),
            contextlib.redirect_stdout(chatter),
            warnings.catch_warnings(record=True) as seen,
        ):
            warnings.simplefilter("always")
            if type(estimator).__name__ in LIGHTGBM:
                model = treelite.frontend.from_lightgbm(estimator.booster_)
            else:
                model = treelite.sklearn.import_model(estimator)
            # One translation unit per core: they compile in parallel below.
            params = {"parallel_comp": cores} if cores > 1 else {}
            tl2cgen.generate_c_code(model, str(source), params=params)
    except Exception as exc:
        raise BadInput(
            f"cannot compile a {type(estimator).__name__} to native code",
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
            "nothing to do: ONNX Runtime or scikit-learn scores this model",
        ) from None
    for line in [*chatter.getvalue().splitlines(), *(str(w.message) for w in seen)]:
        if line.strip():
            logger.debug("treelite/tl2cgen: %s", line.strip())
    (source / native.GLUE_FILE).write_text(native.GLUE_SOURCE, encoding="utf-8")
    files = sorted(p.name for p in source.glob("*.c"))
    size = sum((source / f).stat().st_size for f in files)
    if size > MAX_SOURCE_BYTES:
        raise BadInput(
            "not compiling the model to native code",
            f"its C source is {size >> 20} MiB (limit {MAX_SOURCE_BYTES >> 20} MiB): "
            "a forest of very deep trees",
            "nothing to do: ONNX Runtime scores it; fewer or shallower trees would compile",
        )
    # Relative names and the source folder as the working directory: the objects
    # then carry no temporary path, so the same model compiles to the same bytes.
    with ThreadPoolExecutor(cores) as pool:
        list(
            pool.map(
                lambda name: _run([compiler, *CFLAGS, "-c", name, "-o", name[:-2] + ".o"], source),
                files,
            )
        )
    objects = [f[:-2] + ".o" for f in files]
    _run([compiler, "-shared", "-o", "model.so", *objects, "-lm"], source)
    return source / "model.so"


@contextlib.contextmanager
def _stderr_to(sink: io.StringIO) -> Iterator[None]:
    """Send what native code writes to file descriptor 2 into ``sink`` for the duration."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedding host): leave it
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            sink.write(capture.read().decode(errors="replace"))


def _run(command: list[str], cwd: Path) -> None:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise BadInput(
            "cannot compile the model to native code",
            f"{Path(command[0]).name} took over {COMPILE_TIMEOUT_S} s",
            "nothing to do: ONNX Runtime scores it",
        ) from None
    except OSError as exc:
        raise BadInput(
            "cannot compile the model to native code", str(exc), "check the C compiler ($CC)"
        ) from None
    if done.returncode != 0:
        raise BadInput(
            "cannot compile the model to native code",
            f"{Path(command[0]).name} exited {done.returncode}: {done.stderr.strip()[-500:]}",
            "check the C compiler ($CC); ONNX Runtime scores the model meanwhile",
        )


def _parity(raw: np.ndarray, model: Any, rows: pd.DataFrame, task: str) -> dict[str, Any]:
    """The library's outputs against the whole pipeline on the rows (the truth)."""
    ours: np.ndarray
    theirs: np.ndarray
    if task == "regression":
        ours = raw[:, 0] if raw.shape[1] == 1 else np.full(len(rows), np.nan)
        theirs = np.asarray(model.predict(rows), dtype=np.float64).reshape(-1)
        agreement = 1.0
    else:
        theirs = np.asarray(model.predict_proba(rows), dtype=np.float64)
        try:
            ours = native.probabilities(raw, int(theirs.shape[1]))
        except ValueError:
            return parity_report(len(rows), math.inf, 0.0, native.TOLERANCE)
        agreement = float(np.mean(ours.argmax(axis=1) == theirs.argmax(axis=1)))
    diff = float(np.max(np.abs(ours - theirs))) if ours.shape == theirs.shape else math.inf
    return parity_report(len(rows), diff if math.isfinite(diff) else math.inf, agreement,
                         native.TOLERANCE)  # fmt: skip


def _shown(diff: float | None) -> str:
    return "an unbounded amount (a shape or a non-finite value)" if diff is None else f"{diff:.3g}"


def _compiler_version(compiler: str) -> str:
    try:
        done = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
        first = done.stdout.strip().splitlines()
        return first[0] if first else Path(compiler).name
    except (OSError, subprocess.TimeoutExpired):
        return Path(compiler).name


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("treelite", "tl2cgen", "scikit-learn"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found
