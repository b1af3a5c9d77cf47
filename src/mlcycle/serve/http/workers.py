"""Several server processes on one port, each with its own listening socket.

uvicorn's ``--workers`` shares one listening socket between the processes,
and whichever wakes first accepts most of a burst of new connections: with
16 keep-alive connections we saw splits of 16/0 and 14/2, so one process did
all the work while the other idled (~11k instead of ~18k single-row
requests/s on 2 cores). Here every worker binds its own socket with
``SO_REUSEPORT`` and the kernel spreads connections across the listening
sockets by hash. A worker listens only once its model is loaded, so no
connection lands on a process that cannot answer yet.

The supervisor is written here because uvicorn has no per-worker socket
option; it restarts a worker that dies and forwards SIGTERM/SIGINT so each
worker shuts down gracefully (its prediction log is flushed).

Example:
    >>> run_workers("mlcycle.cli.serve:app_factory", "127.0.0.1", 8000, workers=2)

Each worker rebuilds its app from the import string; its settings reach it as
environment variables (:meth:`~mlcycle.serve.http.settings.ServeSettings.to_env`).

With more than one worker the supervisor also makes a fresh folder for the
workers' metrics (``MLCYCLE_METRICS_DIR``, see :mod:`~mlcycle.serve.http.metrics`)
so every scrape sums all of them, and deletes it when the server stops.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from mlcycle.errors import BadInput, MlcycleError
from mlcycle.serve.http.metrics import SHARED_ENV

logger = logging.getLogger("mlcycle.serve")

# A worker that dies this soon after starting, this many times in a row, is
# failing at start-up (a broken bundle, a port taken): stop instead of looping.
QUICK_DEATH_SECONDS = 10.0
MAX_QUICK_DEATHS = 3


def run_workers(app: str, host: str, port: int, workers: int, **uvicorn_options: Any) -> None:
    """Serve ``app`` (an import string, ``factory=True`` style) from ``workers`` processes.

    One worker, or a platform without ``SO_REUSEPORT``, runs uvicorn as usual.

    Example:
        >>> run_workers("mlcycle.cli.serve:app_factory", "127.0.0.1", 8000, 2, factory=True)
    """
    import uvicorn

    if workers <= 1:
        uvicorn.run(app, host=host, port=port, workers=workers, **uvicorn_options)
        return
    with shared_metrics_dir():
        if not hasattr(socket, "SO_REUSEPORT"):
            uvicorn.run(app, host=host, port=port, workers=workers, **uvicorn_options)
            return
        _supervise(app, host, port, workers, uvicorn_options)


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[str]:
    """A fresh folder for the workers' metrics, named in the environment they inherit.

    Fresh per server: counts left by an earlier server (or another one running)
    would otherwise be summed in. Removed, and the variable restored, on exit.

    Example:
        >>> with shared_metrics_dir() as path:
        ...     os.environ["MLCYCLE_METRICS_DIR"] == path
        True
    """
    previous = os.environ.get(SHARED_ENV)
    path = tempfile.mkdtemp(prefix="mlcycle-metrics-")
    os.environ[SHARED_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(SHARED_ENV, None)
        else:
            os.environ[SHARED_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def _supervise(
    app: str, host: str, port: int, workers: int, uvicorn_options: dict[str, Any]
) -> None:
    port = claim_port(host, port)
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def start() -> tuple[multiprocessing.process.BaseProcess, float]:
        proc = context.Process(
            target=_worker, args=(app, host, port, uvicorn_options), daemon=False
        )
        proc.start()
        return proc, time.monotonic()

    procs = [start() for _ in range(workers)]
    quick_deaths = 0
    try:
        while not stop.wait(0.5):
            for i, (proc, started) in enumerate(procs):
                if proc.is_alive():
                    continue
                quick = time.monotonic() - started < QUICK_DEATH_SECONDS
                quick_deaths = quick_deaths + 1 if quick else 0
                if quick_deaths >= MAX_QUICK_DEATHS:
                    raise MlcycleError(
                        "server workers keep exiting at start-up",
                        f"{MAX_QUICK_DEATHS} exits within {QUICK_DEATH_SECONDS:.0f} s of starting "
                        f"(last exit code {proc.exitcode})",
                        "run with --workers 1 to see the error",
                    )
                logger.warning("worker %d exited with %s; starting another", i, proc.exitcode)
                procs[i] = start()
    finally:
        _stop_all([proc for proc, _ in procs])
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def claim_port(host: str, port: int) -> int:
    """Check the port is free (``SO_REUSEPORT`` alone would let us join a server already
    there and split its traffic); pick one for port 0.

    Example:
        >>> claim_port("127.0.0.1", 0) > 0
        True
    """
    probe = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return int(probe.getsockname()[1])
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BadInput(
                f"{host}:{port} is already in use",
                "another process listens there",
                "stop the other server or pass another --port",
            ) from exc
        raise BadInput(f"cannot bind {host}:{port}", str(exc.strerror), "check --host") from exc
    finally:
        probe.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _worker(app: str, host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, host=host, port=port, **options)
    # uvicorn loads the app and runs its start-up before it listens on the socket.
    uvicorn.Server(config).run(sockets=[sock])


def _stop_all(procs: list[multiprocessing.process.BaseProcess], timeout: float = 60.0) -> None:
    """SIGTERM every worker (a graceful uvicorn shutdown), then wait; kill what hangs."""
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(OSError):
                proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            logger.warning("worker %s did not stop in %.0f s; killing it", proc.pid, timeout)
            proc.kill()
            proc.join(5)
