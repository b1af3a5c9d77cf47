"""Batch prediction: a Parquet/CSV file (or folder, glob or fsspec URL) in, a prediction file out.

Public surface: :func:`predict_file` (the job), :class:`Scorer` and
:data:`ENGINES` (how chunks are scored), :func:`use_onnx`, :func:`native_model`. Inside:
``job.py`` (the read → check → score → write pipeline), ``io.py`` (finding and
reading inputs on a thread), ``score.py`` (parallel scoring, one chunk start to
finish), ``output.py`` (the output columns and a chunk's table), ``write.py``
(streaming the output on a thread), ``remote.py`` (outputs on object stores,
published only when the job finished).

Example:
    >>> rt = ModelRuntime.load(Path("bundle"), version=3)
    >>> predict_file(rt, "flights.parquet", "scored.parquet", id_column="flight_id")["rows"]
    1000
"""

from mlcycle.serve.batch.job import predict_file
from mlcycle.serve.batch.score import BATCH_ONNX_TOLERANCE, ENGINES, Scorer, native_model, use_onnx

__all__ = ["BATCH_ONNX_TOLERANCE", "ENGINES", "Scorer", "native_model", "predict_file", "use_onnx"]
