"""A bundle's tree ensemble compiled to native code (``<bundle>/native``), for batch scoring.

The registry compiles it when a model is registered and keeps it only when it
reproduced scikit-learn on the parity rows (``registry/native.py``). A loader
here trusts it only when, in addition, it was compiled for this platform, the
file is the one the manifest records (sha256), and it loads and re-scores the
manifest's check rows to the same values. Anything
else answers ``None`` (with a log line saying why) and batch scoring uses ONNX
Runtime or scikit-learn as before.

Example:
    >>> model = NativeModel.load(Bundle(Path("bundle")), runtime)
    >>> proba = model.predict(runtime.plan.encode_frame(frame))   # runtime.classes order
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from mlcycle import native
from mlcycle.bundle import Bundle
from mlcycle.hashing import hash_file
from mlcycle.serve.model.loading import classes_order
from mlcycle.serve.model.runtime import ModelRuntime

logger = logging.getLogger("mlcycle.serve")


class NativeModel:
    """A compiled model checked for one runtime: its matrix in, its class order out.

    :meth:`predict` takes the runtime plan's float64 matrix and returns the
    probabilities in ``runtime.classes`` order (values for regression).
    """

    def __init__(self, library: native.NativeLibrary, manifest: dict[str, Any], rt: ModelRuntime):
        self.library = library
        self.manifest = manifest
        self.float32_input = manifest.get("input_dtype") == "float32"
        self._classes = len(rt.classes or []) if rt.is_classifier else 0
        self._order = rt.order

    @classmethod
    def load(cls, bundle: Bundle, rt: ModelRuntime) -> NativeModel | None:
        """The bundle's compiled model if it can be trusted here for ``rt``; else ``None``.

        ``rt`` must have its compiled plan (the matrix the library reads).

        Example:
            >>> NativeModel.load(Bundle(Path("bundle")), runtime) is not None
            True
        """
        manifest_path, lib_path = bundle.native_manifest_path, bundle.native_lib_path
        if not manifest_path.is_file() or not lib_path.is_file() or rt.plan is None:
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            why = _refusal(manifest, rt)
            if why is not None:
                logger.info("not using the native model in %s: %s", bundle.native_dir, why)
                return None
            # Before loading: a damaged library can crash the process (a truncated one
            # faults on first touch) instead of raising.
            if hash_file(lib_path) != manifest.get("sha256"):
                why = f"{lib_path.name} is not the file its manifest records (damaged or replaced)"
            else:
                model = cls(native.NativeLibrary(lib_path), manifest, rt)
                why = model._check(manifest)
        except Exception as exc:  # a broken file must never stop a job: another engine scores
            why = f"{type(exc).__name__}: {exc}"
        if why is not None:
            logger.warning("ignoring the native model in %s: %s", bundle.native_dir, why)
            return None
        return model

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Probabilities in the runtime's class order (``(rows,)`` values for regression).

        Example:
            >>> model.predict(matrix).shape
            (1000, 2)
        """
        x = matrix.astype(np.float32).astype(np.float64) if self.float32_input else matrix
        raw = self.library.predict(x)
        if not self._classes:
            return raw[:, 0]
        proba = native.probabilities(raw, self._classes)
        return proba if self._order is None else proba[:, self._order]

    def _check(self, manifest: dict[str, Any]) -> str | None:
        lib = self.library
        if lib.width != manifest.get("width") or lib.outputs != manifest.get("outputs"):
            return f"the library reads {lib.width} columns and gives {lib.outputs} outputs"
        check = manifest.get("check") or {}
        rows = np.array(check.get("rows") or [], dtype=np.float64)  # null → NaN
        expected = np.array(check.get("expected") or [], dtype=np.float64)
        if rows.ndim != 2 or len(rows) == 0 or expected.shape != (len(rows), lib.outputs):
            return "its manifest has no check rows"
        diff = float(np.max(np.abs(lib.predict(rows) - expected)))
        if not diff <= native.TOLERANCE:
            return f"it scores its check rows {diff:.3g} away from the values recorded"
        return None


def _refusal(manifest: dict[str, Any], rt: ModelRuntime) -> str | None:
    """Why a manifest does not describe a library usable for ``rt`` here, or ``None``."""
    parity = manifest.get("parity") or {}
    diff = parity.get("max_abs_diff")
    if manifest.get("format") != native.FORMAT:
        return f"unknown format {manifest.get('format')!r}"
    if not parity.get("passed") or not isinstance(diff, int | float) or diff > native.TOLERANCE:
        return "its parity record did not pass"
    if manifest.get("platform") != native.platform_tag():
        return f"it was compiled for {manifest.get('platform')}; this is {native.platform_tag()}"
    if manifest.get("task") != rt.meta.task:
        return f"it is a {manifest.get('task')} model; the bundle's is {rt.meta.task}"
    assert rt.plan is not None
    if manifest.get("width") != rt.plan.width:
        return f"it reads {manifest.get('width')} columns; the preprocessing makes {rt.plan.width}"
    if rt.is_classifier:
        order, _ = classes_order(list(manifest.get("estimator_classes") or []), rt.meta)
        if rt.order is None or order.tolist() != rt.order.tolist():
            return "its classes are not the model's"
    return None
