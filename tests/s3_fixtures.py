"""A real S3 API on loopback for the team-mode tests: moto's standalone server, once per session.

``s3_server`` starts :class:`moto.server.ThreadedMotoServer` on 127.0.0.1 and a
port the OS picks (one per pytest-xdist worker), and stops it at the end of
the session. Tests reach it the way mlcycle is configured in real life — the
environment botocore reads (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``) — never through a knob of mlcycle's own.

``s3_env`` sets that environment for the test's process; ``s3_process_env``
is the same for a subprocess (``mlcycle …``); ``s3_bucket`` makes a fresh
bucket per test. ``s3_restricted`` switches the server's authentication on
for one test and yields credentials that may not write under ``readonly/``
(an IAM policy), so a refused write and unknown credentials can be tested.

Example:
    >>> def test_x(s3_bucket: str) -> None:       # s3_bucket = "s3://b-1a2b3c4d"
    ...     store = Store.open(tmp, artifacts_url=f"{s3_bucket}/art")
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

KEY_ID = "testing"
SECRET = "testing"  # moto accepts any key until authentication is switched on
REGION = "us-east-1"
# Settings that must not leak in from a developer's machine.
_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_SECURITY_TOKEN",
)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint (``http://127.0.0.1:PORT``) of this session's moto S3 server."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def process_env(endpoint: str, home: Path, **extra: str) -> dict[str, str]:
    """``os.environ`` for a subprocess that talks to ``endpoint`` (no ``MLCYCLE_*``, no profile).

    ``home`` holds empty AWS config files, so a developer's ``~/.aws`` is never read.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MLCYCLE_") and k not in _AWS_VARS and not k.startswith("FSSPEC_")
    }
    env.update(
        AWS_ACCESS_KEY_ID=KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=endpoint,
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",  # no 1 s wait for an instance profile
    )
    env.update(extra)
    return env


def _clear_s3fs_instances() -> None:
    # s3fs reuses a filesystem per set of arguments, and the endpoint and keys read from
    # the environment are not among them: a test that changes them needs new instances.
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_env(
    s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """This process talks to the session's S3 server; yields its endpoint."""
    home = tmp_path_factory.mktemp("aws")
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    env = process_env(s3_server, home)
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_EC2_METADATA_DISABLED",
    ):
        monkeypatch.setenv(name, env[name])
    _clear_s3fs_instances()
    yield s3_server
    _clear_s3fs_instances()


def new_bucket(endpoint: str) -> str:
    """Create a bucket with a fresh name on ``endpoint``; return ``s3://NAME``."""
    import boto3

    name = f"mlcycle-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )
    client.create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture
def s3_bucket(s3_env: str) -> str:
    """A fresh, empty bucket on the session's server (``s3://NAME``); the env points at it."""
    return new_bucket(s3_env)


@dataclass(frozen=True)
class Restricted:
    """Credentials of an IAM user that may do anything but write under ``readonly/``."""

    key_id: str
    secret: str
    user: str
    endpoint: str

    def allow_all(self) -> None:
        """Lift the deny (an administrator fixing the policy): one unauthenticated request."""
        _requests_before_auth(self.endpoint, "1")
        _iam(self.endpoint).put_user_policy(
            UserName=self.user, PolicyName=_POLICY, PolicyDocument=json.dumps(_policy(deny=False))
        )


_POLICY = "no-readonly"


def _policy(*, deny: bool) -> dict[str, object]:
    statements: list[dict[str, str]] = [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]
    if deny:
        statements.append(
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::*/readonly/*"}
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _requests_before_auth(endpoint: str, count: str) -> None:
    """moto authenticates every request after the next ``count`` ("inf": never)."""
    import httpx

    httpx.post(f"{endpoint}/moto-api/reset-auth", content=count.encode()).raise_for_status()


def _iam(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


@pytest.fixture
def s3_restricted(s3_env: str) -> Iterator[Restricted]:
    """Authentication on for this test (the server's other clients then need real keys).

    moto checks credentials and IAM policies only once switched on
    (``/moto-api/reset-auth``); the first few requests after that stay
    unauthenticated, which is how the user and its policy are made. Switched
    off again afterwards: tests on one xdist worker run one at a time. Make
    buckets before asking for this fixture.
    """
    _requests_before_auth(s3_env, "3")  # the three IAM calls below
    try:
        iam: Any = _iam(s3_env)
        user = f"u{uuid.uuid4().hex[:10]}"
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        iam.put_user_policy(
            UserName=user, PolicyName=_POLICY, PolicyDocument=json.dumps(_policy(deny=True))
        )
        _clear_s3fs_instances()
        yield Restricted(key["AccessKeyId"], key["SecretAccessKey"], user, s3_env)
    finally:
        _requests_before_auth(s3_env, "inf")
        _clear_s3fs_instances()
