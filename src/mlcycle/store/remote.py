"""Object storage for the store: opening an fsspec URL, and errors a person can act on.

Team mode keeps artifacts (and, by default, the prediction log) on object
storage: ``MLCYCLE_ARTIFACTS_URL=s3://bucket/prefix``. The connection comes
from the usual places of the backend, never from a knob of mlcycle's own —
for S3, botocore's: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or
``AWS_PROFILE`` (``~/.aws/credentials``, ``~/.aws/config``), the endpoint of
an S3-compatible server in ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (or
the profile's ``endpoint_url``), and fsspec's own configuration
(``FSSPEC_S3='{"default_block_size": 8388608}'``) for s3fs's options.

Each backend raises its own exceptions (s3fs maps most S3 error codes to
``OSError`` subclasses; botocore raises its own for an unreachable endpoint
or missing credentials). :func:`storage_error` turns any of them into one
:class:`~mlcycle.errors.StorageUnavailable` naming the URL (credentials
redacted), the cause and what to do. A missing backend package is a clear
"install mlcycle[s3]", not an ``ImportError``.

Example:
    >>> fs, path = filesystem("s3://team-bucket/mlcycle")
    >>> check_reachable(fs, path, "s3://team-bucket/mlcycle")   # one HEAD of the bucket
"""

from __future__ import annotations

import os
import re
from typing import Any

import fsspec

from mlcycle.errors import BadInput, StorageUnavailable

#: Protocols whose first path segment is a bucket (or container) that must exist.
BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "az", "adl"})
#: The package behind a protocol, and how to install it.
_BACKENDS = {
    "s3": ("s3fs", "pip install 'mlcycle[s3]'"),
    "s3a": ("s3fs", "pip install 'mlcycle[s3]'"),
    "gs": ("gcsfs", "pip install gcsfs"),
    "gcs": ("gcsfs", "pip install gcsfs"),
    "abfs": ("adlfs", "pip install adlfs"),
    "az": ("adlfs", "pip install adlfs"),
}
# Exception class names (anywhere in the MRO) that mean "could not reach the server":
# botocore's, aiohttp's and the builtin ones, matched by name so that none is imported.
_UNREACHABLE = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ConnectionError",
        "TimeoutError",
    }
)
_NO_CREDENTIALS = frozenset({"NoCredentialsError", "PartialCredentialsError"})
_USERINFO = re.compile(r"^([a-zA-Z][\w+.-]*://)[^/@]*@")
_SECRET_QUERY = re.compile(r"((?:secret|password|token|key|sig|signature)[^=&]*=)[^&]*", re.I)


def redact(url: str) -> str:
    """``url`` without credentials: user info and secret-looking query values become ``***``.

    Example:
        >>> redact("s3://AKIA:s3cr3t@bucket/p?token=abc")
        's3://***@bucket/p?token=***'
    """
    url = _USERINFO.sub(r"\1***@", str(url))
    if "?" in url:
        head, query = url.split("?", 1)
        url = head + "?" + _SECRET_QUERY.sub(r"\1***", query)
    return url


def protocol_of(url: str) -> str:
    """The URL's scheme, ``file`` for a plain path.

    Example:
        >>> protocol_of("s3://b/p"), protocol_of("/tmp/x")
        ('s3', 'file')
    """
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """``fsspec.core.url_to_fs(url)``, with a clear error when the backend is not installed.

    Raises :class:`~mlcycle.errors.BadInput` (exit 2) naming the package and the
    extra to install, or the URL when its scheme is unknown.

    Example:
        >>> fs, path = filesystem("s3://team-bucket/mlcycle")   # without s3fs: BadInput
    """
    protocol = protocol_of(url)
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        package, install = _BACKENDS.get(protocol, (protocol, ""))
        raise BadInput(
            f"cannot use {redact(url)}",
            f"{protocol}:// URLs need the {package} package, which is not installed",
            f"install it ({install or 'see ' + str(exc)}) or point the URL at a local folder",
        ) from None
    except ValueError as exc:  # an unknown protocol
        raise BadInput(
            f"cannot use {redact(url)}", str(exc), "use a local path or an s3:// URL"
        ) from None
    return fs, str(path)


def endpoint_of(fs: Any) -> str:
    """Where an S3 filesystem sends its requests, as botocore resolves it (for messages).

    Example:
        >>> endpoint_of(s3fs.S3FileSystem())   # with AWS_ENDPOINT_URL=http://127.0.0.1:9000
        'http://127.0.0.1:9000'
    """
    configured = (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url")
    found = (
        configured
        or getattr(fs, "endpoint_url", None)
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    return redact(str(found)) if found else "AWS S3 (no endpoint configured)"


def storage_error(url: str, exc: BaseException, doing: str, fs: Any = None) -> StorageUnavailable:
    """One actionable error for any backend's failure while ``doing`` something at ``url``.

    Example:
        >>> try:
        ...     fs.put(local, remote, recursive=True)
        ... except Exception as exc:
        ...     raise storage_error("s3://bucket/art", exc, "write an artifact to") from None
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    where = redact(url)
    s3 = protocol_of(url) in ("s3", "s3a")
    if names & _UNREACHABLE:
        endpoint = f" at {endpoint_of(fs)}" if s3 else ""
        why = f"the object store{endpoint} cannot be reached ({type(exc).__name__})"
        fix = (
            "check AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3, or the profile's endpoint_url), "
            "that the server is up and that this machine can reach it"
            if s3
            else "check the URL and that this machine can reach the server"
        )
    elif names & _NO_CREDENTIALS:
        why = "no credentials were found"
        fix = (
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile "
            "in ~/.aws/credentials"
            if s3
            else "configure the backend's credentials"
        )
    elif isinstance(exc, PermissionError):
        why = f"access denied ({text})"
        fix = (
            "check the credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE) and that the bucket's "
            "policy lets them read, list and write under this prefix"
            if s3
            else "check the credentials and the permissions on this location"
        )
    elif isinstance(exc, FileNotFoundError) and "bucket" in text.lower():
        why = "the bucket does not exist"
        fix = (
            f"create it (e.g. `aws s3 mb s3://{_bucket(url)}`) or fix MLCYCLE_ARTIFACTS_URL, "
            "then run again"
        )
    else:
        why = f"{type(exc).__name__}: {text}"
        fix = "check the URL, the credentials and the network, then run again"
    return StorageUnavailable(f"cannot {doing} {where}", why, fix)


def _bucket(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]


def check_reachable(fs: fsspec.AbstractFileSystem, path: str, url: str) -> None:
    """Fail early and clearly when ``url``'s bucket is missing or cannot be reached.

    One metadata request (a HEAD of the bucket) for bucket-based protocols; a
    no-op for others. Read-only: a refused *write* shows at the first write.

    Example:
        >>> check_reachable(*filesystem("s3://team-bucket/art"), "s3://team-bucket/art")
    """
    if protocol_of(url) not in BUCKET_PROTOCOLS:
        return
    bucket = path.split("/", 1)[0]
    try:
        fs.info(bucket)
    except FileNotFoundError as exc:
        raise storage_error(
            url, FileNotFoundError("bucket not found"), "open the artifact store at", fs
        ) from exc
    except Exception as exc:  # each backend raises its own kinds: translated by name
        raise storage_error(url, exc, "open the artifact store at", fs) from exc
