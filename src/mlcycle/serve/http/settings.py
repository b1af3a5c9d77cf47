"""The REST service's settings: one object the app factory takes, and its environment form.

`mlcycle serve` starts its workers as separate processes (``workers.py``),
which rebuild the app from an import string: the settings travel to them as
``MLCYCLE_SERVE_*`` environment variables. :meth:`ServeSettings.to_env` writes
them, :meth:`ServeSettings.from_env` reads them back, and nothing else reads
those variables. The two tokens are the user's own variables
(``MLCYCLE_ADMIN_TOKEN``, ``MLCYCLE_PREDICT_TOKEN``), read the same way.

Example:
    >>> settings = ServeSettings(canary=0.1, prediction_log=".mlcycle/predictions")
    >>> os.environ.update(settings.to_env())          # the parent, before starting workers
    >>> ServeSettings.from_env() == settings           # each worker
    True
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlcycle.errors import BadInput

BUNDLE_ENV = "MLCYCLE_SERVE_BUNDLE"
VERSION_ENV = "MLCYCLE_SERVE_VERSION"
BODY_ENV = "MLCYCLE_SERVE_MAX_BODY"
SPEC_ENV = "MLCYCLE_SERVE_SPEC"
ALIAS_ENV = "MLCYCLE_SERVE_ALIAS"
LOG_ENV = "MLCYCLE_SERVE_LOG"
CANARY_ENV = "MLCYCLE_SERVE_CANARY"
SHADOW_ENV = "MLCYCLE_SERVE_SHADOW"
POLL_ENV = "MLCYCLE_SERVE_POLL"
OUT_OF_RANGE_ENV = "MLCYCLE_SERVE_OUT_OF_RANGE"
OUT_OF_RANGE_POLICIES = ("flag", "reject")
ADMIN_TOKEN_ENV = "MLCYCLE_ADMIN_TOKEN"
PREDICT_TOKEN_ENV = "MLCYCLE_PREDICT_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """How the REST service runs.

    ``max_body_bytes`` caps a request body; ``request_log`` logs one line per
    request; ``canary`` is the share of requests the challenger answers and
    ``shadow`` has it score every champion request too; ``poll_seconds`` is
    the interval between checks of the followed alias; admin routes need
    ``admin_token`` (off without one), prediction routes ``predict_token``
    when set; ``max_batch_rows`` caps a micro-batch; ``tune_gc`` freezes the
    heap once the model is warm (``serve/model/gctune.py``); ``out_of_range``
    (``flag`` or ``reject``) overrides the policy each bundle carries for
    numbers outside their training range (``None``: the bundle's own).

    What a worker process loads: ``bundle`` (folder) and ``version``, the
    ``spec`` and ``alias`` to follow (both, or neither), and the
    ``prediction_log`` root (``None``: no log).

    Example:
        >>> create_app(runtime, ServeSettings(max_body_bytes=1_000_000, request_log=True))
    """

    max_body_bytes: int = 10_000_000
    request_log: bool = False
    canary: float = 0.0
    shadow: bool = False
    poll_seconds: float = 5.0
    admin_token: str | None = field(default=None, repr=False)
    predict_token: str | None = field(default=None, repr=False)
    max_batch_rows: int = 2048
    tune_gc: bool = True
    bundle: Path | None = None
    version: int | None = None
    spec: Path | None = None
    alias: str | None = None
    prediction_log: str | None = None
    out_of_range: str | None = None

    def __post_init__(self) -> None:
        if self.out_of_range is not None and self.out_of_range not in OUT_OF_RANGE_POLICIES:
            raise BadInput(
                f"unknown out-of-range policy '{self.out_of_range}'",
                "a number outside its training range is either flagged or rejected",
                f"use one of: {', '.join(OUT_OF_RANGE_POLICIES)}",
            )
        if self.max_body_bytes <= 0:
            raise BadInput(
                f"max_body_bytes must be positive, got {self.max_body_bytes}",
                "it caps the size of a request body",
                "set serve.max_body_bytes to a positive number of bytes",
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServeSettings:
        """The settings a worker process was started with (see :meth:`to_env`).

        Example:
            >>> ServeSettings.from_env({"MLCYCLE_SERVE_BUNDLE": "bundle"}).bundle
            PosixPath('bundle')
        """
        env = os.environ if env is None else env
        version = env.get(VERSION_ENV)
        return cls(
            max_body_bytes=int(env.get(BODY_ENV, "10000000")),
            canary=float(env.get(CANARY_ENV, "0")),
            shadow=env.get(SHADOW_ENV) == "1",
            poll_seconds=float(env.get(POLL_ENV, "5")),
            admin_token=env.get(ADMIN_TOKEN_ENV) or None,
            predict_token=env.get(PREDICT_TOKEN_ENV) or None,
            bundle=Path(env[BUNDLE_ENV]) if env.get(BUNDLE_ENV) else None,
            version=int(version) if version else None,
            spec=Path(env[SPEC_ENV]) if env.get(SPEC_ENV) and env.get(ALIAS_ENV) else None,
            alias=env[ALIAS_ENV] if env.get(SPEC_ENV) and env.get(ALIAS_ENV) else None,
            prediction_log=env.get(LOG_ENV) or None,
            out_of_range=env.get(OUT_OF_RANGE_ENV) or None,
        )

    def to_env(self) -> dict[str, str]:
        """The ``MLCYCLE_SERVE_*`` variables :meth:`from_env` reads back (tokens excluded:
        they are the user's own variables, inherited as they are).

        Example:
            >>> ServeSettings(canary=0.5).to_env()["MLCYCLE_SERVE_CANARY"]
            '0.5'
        """
        env = {
            BODY_ENV: str(self.max_body_bytes),
            CANARY_ENV: str(self.canary),
            SHADOW_ENV: "1" if self.shadow else "0",
            POLL_ENV: str(self.poll_seconds),
            BUNDLE_ENV: "" if self.bundle is None else str(self.bundle),
            VERSION_ENV: "" if self.version is None else str(self.version),
            SPEC_ENV: "" if self.spec is None else str(self.spec),
            ALIAS_ENV: self.alias or "",
            LOG_ENV: self.prediction_log or "",
            OUT_OF_RANGE_ENV: self.out_of_range or "",
        }
        return env


def is_loopback(host: str) -> bool:
    """True when ``host`` binds only this machine (``localhost``, ``127.0.0.0/8``, ``::1``).

    Any other name is taken as public: it may resolve to an outside address.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
        (True, False)
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, predict_token: str | None, allow_public: bool) -> str | None:
    """Refuse a public bind without a prediction token; the warning to print when allowed.

    Without ``MLCYCLE_PREDICT_TOKEN`` anyone who reaches a public address can
    call ``/predict``, ``/v2/.../infer`` and ``/metrics``, and every answered
    request lands in the prediction log monitoring trusts, so that takes an
    explicit ``allow_public``. Returns ``None`` when there is nothing to say.

    Example:
        >>> check_bind("0.0.0.0", predict_token=None, allow_public=True)
        'serving on 0.0.0.0 without a prediction token (--allow-public): ...'
    """
    if is_loopback(host) or predict_token:
        return None
    if not allow_public:
        raise BadInput(
            f"refusing to serve on {host} without a prediction token",
            "it is not a loopback address: anyone who can reach it could call /predict and "
            "/v2 infer, read /metrics and write to the prediction log monitoring trusts",
            f"set {PREDICT_TOKEN_ENV} (clients then send 'Authorization: Bearer <token>'), "
            "bind 127.0.0.1, or pass --allow-public to serve it open on purpose",
        )
    return (
        f"serving on {host} without a prediction token (--allow-public): anyone who can "
        "reach it can call /predict and /v2 infer, read /metrics and write to the "
        "prediction log"
    )
