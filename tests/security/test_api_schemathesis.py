"""schemathesis against the OpenAPI schema of the JSON API (/api/openapi.json), in process.

Every operation gets generated requests, valid and invalid, with and without a staff token; no
answer may be a server error (5xx, or an exception escaping the WSGI application), and every
answer must follow the schema: documented status, content type and body. That includes the
answers django-ninja makes before our code runs (401/403, the 422 of request validation, the 400
of a body that is not JSON, 415): they all use the one error shape (gaveurs/api_errors.py) and
the schema documents them (gaveurs/api.py).

``positive_data_acceptance`` is left out: the schema cannot say ``from <= to`` (the ledger's
documented 400), and JSON Schema counts 1.0 as an integer where the feedback API wants strict
integer ratings (documented 422). Bounded (EXAMPLES per operation) to stay well under a minute.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from gaveurs.wsgi import application
from tests.factories import make_product

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application)
# SCHEMATHESIS_EXAMPLES=1000 for a deeper run; SCHEMATHESIS_REPORT=1 prints each call.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "50"))


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """In process, the request signals would close the connection holding the test transaction
    (Django's test client disconnects them the same way)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def products(db, settings):
    settings.FEEDBACK_RATE_LIMIT = 10**6  # reach the validation, not the rate limit
    return [make_product(), make_product()]


def use_real_codes(case, codes: list[str]) -> None:
    """Every third generated QR code becomes a real product's, so that the success paths (200,
    201, then 409 for a second review) are generated too, not only unknown codes. Positive cases
    only: a negative case must stay invalid."""
    if case.meta is None or case.meta.generation.mode.is_negative:
        return
    params = case.path_parameters or {}
    if isinstance(params.get("qr_code"), str) and len(params["qr_code"]) % 3 == 0:
        params["qr_code"] = codes[len(params["qr_code"]) % 2]
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("qr_code"), str):
        if len(body["qr_code"]) % 3 == 0:
            body["qr_code"] = codes[len(body["qr_code"]) % 2]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.django_db
def test_no_api_operation_answers_a_server_error_or_breaks_its_schema(case, products, staff_token):
    if "/tasks/" in case.operation.path and not case.meta.generation.mode.is_negative:
        # The staff operations get a real token; negative cases keep what was generated (none,
        # an empty or a random one) and must be refused.
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {staff_token}"}
        case.cookies = {}
    use_real_codes(case, [p.qr_code for p in products])
    response = case.call()
    if os.environ.get("SCHEMATHESIS_REPORT"):
        print(f"schemathesis-call {case.operation.label} {response.status_code}")
    case.validate_response(response, excluded_checks=[checks.positive_data_acceptance])


def test_the_schema_covers_every_json_api_operation():
    labels = {op.ok().label for op in schema.get_all_operations()}
    assert labels >= {
        "POST /api/tasks/qr-code/generate",
        "GET /api/tasks/status/{task_id}",
        "GET /api/consumer/scan/{qr_code}",
        "POST /api/consumer/feedback",
        "GET /api/ledger/proof/{qr_code}",
        "GET /api/ledger/consistency",
    }
