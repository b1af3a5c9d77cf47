"""A tree ensemble compiled to native code: the contract between who compiles and who scores.

The registry compiles a bundle's tree ensemble to a shared library
(``<bundle>/native/model.so``: TL2cgen's C code for the trees plus the small
row loop below) and writes a manifest; batch scoring loads it with
:mod:`ctypes`. Both sides read this module, so the file layout of the
manifest, the C entry points and the platform rule are spelled once.

Why our own C loop: TL2cgen's Python ``Predictor`` would drive the same
generated ``predict()`` row by row, but importing it pulls in Treelite and
SciPy (0.2 s of every batch process); the loop below is all a scorer needs,
and :mod:`ctypes` releases the GIL while it runs, so one slice per core
scales on threads.

Example:
    >>> lib = NativeLibrary(Path("bundle/native/model.so"))
    >>> raw = lib.predict(matrix)          # (rows, lib.outputs) float64
    >>> proba = probabilities(raw, n_classes=2)
"""

from __future__ import annotations

import ctypes
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: The manifest's ``format``; a loader refuses any other.
FORMAT = "mlcycle-native/1"
#: What :data:`GLUE_SOURCE`'s ``mlcycle_abi_version()`` answers.
ABI_VERSION = 1
#: The glue's file name beside TL2cgen's sources.
GLUE_FILE = "mlcycle_rows.c"
#: Largest |Δ| from scikit-learn a compiled model may show on its parity rows. The
#: generated code compares the same doubles scikit-learn does, so the difference
#: is summation order (about 1e-15), not approximation.
TOLERANCE = 1e-9

# Written by hand: a row loop over a strided float64 matrix for TL2cgen's generated
# ``predict(union Entry*, int, double*)``. NaN becomes TL2cgen's "missing" marker, so
# each node sends it where the fitted tree sends missing values. ``header.h`` is
# TL2cgen's generated header (``N_TARGET``, ``MAX_N_CLASS``, ``union Entry``).
GLUE_SOURCE = r"""
#include "header.h"

int32_t mlcycle_abi_version(void) { return 1; }
int32_t mlcycle_num_feature(void) { return get_num_feature(); }
int32_t mlcycle_num_output(void) { return N_TARGET * MAX_N_CLASS; }

int32_t mlcycle_predict(const double* x, int64_t n_rows, int64_t n_cols, int64_t row_stride,
                        int64_t col_stride, double* out) {
  const int64_t width = get_num_feature();
  const int64_t n_out = N_TARGET * MAX_N_CLASS;
  if (n_cols != width) return -1;
  union Entry* row = (union Entry*)malloc(sizeof(union Entry) * (size_t)(width > 0 ? width : 1));
  if (row == NULL) return -2;
  for (int64_t r = 0; r < n_rows; ++r) {
    const double* src = x + r * row_stride;
    for (int64_t j = 0; j < width; ++j) {
      const double v = src[j * col_stride];
      if (isnan(v)) {
        row[j].missing = -1;
      } else {
        row[j].fvalue = v;
      }
    }
    double* dst = out + r * n_out;
    for (int64_t k = 0; k < n_out; ++k) dst[k] = 0.0;
    predict(row, 0, dst);
  }
  free(row);
  return 0;
}
"""


def platform_tag() -> str:
    """Where a compiled library runs: OS, CPU architecture and C library family.

    A library is only loaded where the tag equals the one it was compiled on;
    the loader's check rows catch anything the tag cannot (an older C library).

    Example:
        >>> platform_tag()
        'linux-x86_64-glibc'
    """
    libc = platform.libc_ver()[0] or "libc"
    return f"{sys.platform}-{platform.machine().lower()}-{libc}"


class NativeLibrary:
    """A compiled model loaded with :mod:`ctypes`; :meth:`predict` scores a float64 matrix.

    Raises ``OSError`` when the file cannot be loaded here and ``ValueError``
    when it is not a library of this :data:`ABI_VERSION`.

    Example:
        >>> NativeLibrary(Path("bundle/native/model.so")).width
        7
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        lib = ctypes.CDLL(str(self.path))
        try:
            abi = lib.mlcycle_abi_version
        except AttributeError:
            raise ValueError(f"{self.path.name} has no mlcycle entry points") from None
        abi.restype = ctypes.c_int32
        if abi() != ABI_VERSION:
            raise ValueError(f"{self.path.name} has ABI {abi()}, expected {ABI_VERSION}")
        lib.mlcycle_num_feature.restype = ctypes.c_int32
        lib.mlcycle_num_output.restype = ctypes.c_int32
        self.width = int(lib.mlcycle_num_feature())
        self.outputs = int(lib.mlcycle_num_output())
        self._predict: Any = lib.mlcycle_predict
        self._predict.restype = ctypes.c_int32
        self._predict.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_void_p,
        ]

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Raw outputs, ``(rows, outputs)``: probabilities or values, as the trees give them.

        ``matrix`` is any 2-D float64 array of :attr:`width` columns (strides
        are passed through, so a column-major or sliced matrix is not copied).

        Example:
            >>> lib.predict(np.zeros((2, lib.width))).shape
            (2, 1)
        """
        x = np.asarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"expected a matrix of {self.width} columns, got shape {x.shape}")
        out = np.empty((x.shape[0], self.outputs), dtype=np.float64)
        if x.shape[0] == 0:
            return out
        item = x.itemsize
        code = self._predict(
            x.ctypes.data,
            x.shape[0],
            x.shape[1],
            x.strides[0] // item,
            x.strides[1] // item,
            out.ctypes.data,
        )
        if code != 0:
            raise RuntimeError(f"{self.path.name}: mlcycle_predict failed with code {code}")
        return out


def probabilities(raw: np.ndarray, n_classes: int) -> np.ndarray:
    """A classifier's raw outputs as ``predict_proba``'s matrix (estimator class order).

    A binary model gives one column, P(second class); a multiclass one, one per class.

    Example:
        >>> probabilities(np.array([[0.8]]), 2)
        array([[0.2, 0.8]])
    """
    if raw.shape[1] == n_classes:
        return raw
    if n_classes == 2 and raw.shape[1] == 1:
        return np.column_stack([1.0 - raw[:, 0], raw[:, 0]])
    raise ValueError(f"{raw.shape[1]} outputs for {n_classes} classes")
