"""The prediction log writer: what serving hands it, and how it becomes Parquet files.

The log's contract (location, layout, roles, base columns, the environment
variable) is :mod:`mlcycle.predlog`, shared with monitoring; this package
writes it. A logged row has one shape, :class:`LogRows`, whichever path
scored it: the compiled path's encoded matrix and request body, the generic
path's validated frame, the batch job's chunk, or parsed records.

Modules: ``rows.py`` (:class:`LogRows`, :class:`ModelInfo`), ``writer.py``
(:class:`PredictionLog`: the queue and the writer thread), ``buffer.py``
(column buffers for the compiled path), ``table.py`` and ``matrix.py`` (rows →
Arrow columns in bulk).

Example:
    >>> log = PredictionLog(predictions_root(store.home))
    >>> log.submit(LogRows(ModelInfo.of(runtime), "batch", job_id, now(), labels, proba,
    ...                    frame=chunk))
    >>> log.close()
"""

from mlcycle.serve.predlog.rows import BodyDecoder, LogRows, ModelInfo
from mlcycle.serve.predlog.table import to_table
from mlcycle.serve.predlog.writer import PredictionLog, now

__all__ = ["BodyDecoder", "LogRows", "ModelInfo", "PredictionLog", "now", "to_table"]
