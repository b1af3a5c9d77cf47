"""The OpenAPI document against the server it describes, with schemathesis.

Schemathesis reads ``/openapi.json`` from a live server on 127.0.0.1 and sends
generated requests (valid and invalid ones) to every documented operation; each
answer must be a documented status with a body matching its documented schema,
a 405 must carry ``Allow``, and no request may cause a 500. Bounded: a fixed
seed (``derandomize``) and a few examples per operation, a few seconds in all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from serve_fixtures import build_bundle, live_server
from serve_fixtures import restore_gc as restore_gc  # autouse: undo the app's GC settings

from mlcycle.serve import ModelRuntime, ServeSettings, create_app

ADMIN_TOKEN = "contract-admin-token"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    folder: Path = build_bundle(tmp_path_factory.mktemp("contract"), n=400)
    app = create_app(
        ModelRuntime.load(folder, version=4),
        ServeSettings(max_body_bytes=200_000, admin_token=ADMIN_TOKEN),
    )
    with live_server(app) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_the_server_keeps_its_openapi_document(api_schema: schemathesis.BaseSchema) -> None:
    # Driven by hand, not by schemathesis' pytest plugin (which this pytest breaks):
    # one bounded hypothesis run per documented operation.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:

        @settings(
            max_examples=8,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            # positive_data_acceptance is left out: a schema cannot say that a tensor's
            # data has as many values as its shape, nor that the inputs name every
            # feature, so a schema-valid body may rightly get a 422 (documented).
            case.call_and_validate(
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                excluded_checks=[positive_data_acceptance],
                timeout=10,
            )

        check()
