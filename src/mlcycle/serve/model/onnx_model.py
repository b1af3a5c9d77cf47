"""Run a bundle's ONNX export (the estimator, on the encoded matrix) with ONNX Runtime.

The registry writes the export (:attr:`Bundle.onnx_model_path` and its
manifest) into a bundle when the conversion passed its parity check on holdout rows. The
serving runtime uses it only then, and only after checking it again against
the scikit-learn estimator on sample rows at load; a batch job scoring through
it (``ModelRuntime.load(..., from_export=True)``) instead trusts the parity
record and builds its plan from the manifest, so it never imports scikit-learn.

Example:
    >>> onnx = OnnxModel.load(Bundle(Path("bundle")))
    >>> proba = onnx.predict_proba(matrix)
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from typing import Any

import numpy as np

from mlcycle.bundle import Bundle

logger = logging.getLogger("mlcycle.serve")

# Calls with at least this many rows use every core; smaller calls one thread
# (waking a pool costs more than scoring a few rows).
PARALLEL_ROWS = 4096


class OnnxModel:
    """An ONNX Runtime session pair (one thread, all cores) over ``float32`` input ``X``.

    ``lazy=True`` opens the sessions (and imports ONNX Runtime) on the first
    :meth:`run`: a batch job that scores through the native model never pays
    for them.
    """

    def __init__(self, model_bytes: bytes, manifest: dict[str, Any], *, lazy: bool = False):
        self.manifest = manifest
        self._bytes = model_bytes
        self._lock = threading.Lock()
        self._sessions: list[Any] = []
        if not lazy:
            self._open()

    def _open(self) -> list[Any]:
        with self._lock:
            if self._sessions:
                return self._sessions
            import onnxruntime as ort

            sessions = []
            for threads in (1, max(1, os.cpu_count() or 1)):
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                if threads > 1:
                    # Idle pool threads sleep instead of spinning after each call: a spinning
                    # thread burned ~30 ms of a core after every big call, taking it from the
                    # event loop, the other worker and the batch job's reader.
                    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                sessions.append(
                    ort.InferenceSession(self._bytes, options, providers=["CPUExecutionProvider"])
                )
            self.input_name = sessions[0].get_inputs()[0].name
            self.output_names = [o.name for o in sessions[0].get_outputs()]
            self._sessions = sessions
            return sessions

    @classmethod
    def load(cls, bundle: Bundle, *, lazy: bool = False) -> OnnxModel | None:
        """The bundle's export if it exists, passed parity and loads; else ``None``.

        With ``lazy`` the file is read but ONNX Runtime is not opened (nor
        imported) until the first :meth:`run`; it must be installed.

        Example:
            >>> OnnxModel.load(Bundle(Path("bundle")))
        """
        folder = bundle.onnx_dir
        manifest_path = bundle.onnx_manifest_path
        model_path = bundle.onnx_model_path
        if not manifest_path.is_file() or not model_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if not manifest.get("parity", {}).get("passed"):
                return None
            if lazy and importlib.util.find_spec("onnxruntime") is None:
                raise ImportError("onnxruntime")
            return cls(model_path.read_bytes(), manifest, lazy=lazy)
        except ImportError:
            logger.info("onnxruntime is not installed; serving with scikit-learn")
        except Exception as exc:  # a broken export must never stop serving
            logger.warning("ignoring the ONNX export in %s: %s", folder, exc)
        return None

    def run(self, matrix: np.ndarray) -> list[np.ndarray]:
        """The session's raw outputs for ``matrix`` (float32 input, threads by row count).

        Example:
            >>> labels, proba = onnx.run(matrix)
        """
        sessions = self._sessions or self._open()
        session = sessions[1 if len(matrix) >= PARALLEL_ROWS else 0]
        x = np.ascontiguousarray(matrix, dtype=np.float32)
        return list(session.run(None, {self.input_name: x}))

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in the estimator's ``classes_`` order."""
        outputs = self.run(matrix)
        return np.asarray(outputs[-1], dtype=np.float64)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Regression values."""
        return np.asarray(self.run(matrix)[0], dtype=np.float64).reshape(-1)
