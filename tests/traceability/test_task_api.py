"""The staff task API: POST /api/tasks/qr-code/generate and GET /api/tasks/status/{task_id}."""

from __future__ import annotations

import uuid

import pytest
from celery import current_app, states
from django.core.management import call_command

from tests.factories import make_lot, make_sample, make_staff
from traceability import tasks
from traceability.auth import api_token_create, api_token_revoke
from traceability.models import ApiToken

pytestmark = pytest.mark.django_db

GENERATE = "/api/tasks/qr-code/generate"


@pytest.fixture
def staff(django_user_model):
    return make_staff(
        "qualite", "traceability.add_consumerproduct", "traceability.view_consumerproduct"
    )


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def published(monkeypatch):
    """Registrations handed to Celery (the broker itself is exercised by test_tasks_worker)."""
    calls: list[dict] = []

    def fake_apply_async(*, kwargs, task_id, **_):
        calls.append({"task_id": task_id, **kwargs})

    monkeypatch.setattr(tasks.generate_qr_code_async, "apply_async", fake_apply_async)
    return calls


def submit(client, lot_id, sample_id, site_code="LL", **headers):
    query = {"lot_id": lot_id, "sample_id": sample_id}
    if site_code is not None:
        query["site_code"] = site_code
    return client.post(GENERATE + "?" + "&".join(f"{k}={v}" for k, v in query.items()), **headers)


def test_staff_submit_a_compliant_sample_and_get_the_seed_response_shape(
    staff_client, published, django_capture_on_commit_callbacks
):
    lot = make_lot()
    sample = make_sample(lot=lot, sample_id="ESP32_LL_01_1234")

    with django_capture_on_commit_callbacks(execute=True):
        response = submit(staff_client, lot.id, sample.sample_id)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "task_id", "lot_id", "sample_id", "message"}
    assert body["status"] == "submitted"
    assert (body["lot_id"], body["sample_id"]) == (lot.id, "ESP32_LL_01_1234")
    assert uuid.UUID(body["task_id"])
    assert published == [
        {
            "task_id": body["task_id"],
            "lot_id": lot.id,
            "sample_id": "ESP32_LL_01_1234",
            "site_code": "LL",
        }
    ]


@pytest.mark.parametrize(
    ("grade", "compliant"), [("REJECT", False), ("REJECT", True), ("B", False)]
)
def test_a_rejected_or_non_compliant_sample_is_refused_at_once(
    staff_client, published, django_capture_on_commit_callbacks, grade, compliant
):
    lot = make_lot()
    sample = make_sample(lot=lot, fusion_grade=grade, is_compliant=compliant, fusion_score=0.3)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = submit(staff_client, lot.id, sample.sample_id)

    assert response.status_code == 422
    assert response.json()["error"] == "sample_not_eligible"
    assert f"grade={grade}" in response.json()["detail"]
    assert callbacks == [] and published == []


def test_unknown_lot_unknown_sample_other_lot_and_bad_site_code_get_precise_4xx(
    staff_client, published
):
    lot, other = make_lot(), make_lot()
    sample = make_sample(lot=lot)

    cases = [
        ((999999, sample.sample_id, "LL"), 404, "unknown_lot"),
        ((lot.id, "NO_SUCH_SAMPLE", "LL"), 404, "unknown_sample"),
        ((other.id, sample.sample_id, "LL"), 422, "sample_not_in_lot"),
        ((lot.id, sample.sample_id, "ll"), 400, "invalid_argument"),
    ]
    for args, status, code in cases:
        response = submit(staff_client, *args)
        assert (response.status_code, response.json()["error"]) == (status, code), args
    assert published == []


def test_a_missing_or_non_numeric_lot_id_is_a_validation_error(staff_client, published):
    assert staff_client.post(GENERATE + "?sample_id=X").status_code == 422
    assert staff_client.post(GENERATE + "?lot_id=abc&sample_id=X").status_code == 422


def test_anonymous_and_non_staff_callers_are_refused(client, django_user_model, published):
    lot = make_lot()
    sample = make_sample(lot=lot)
    assert submit(client, lot.id, sample.sample_id).status_code == 401
    assert client.get(f"/api/tasks/status/{uuid.uuid4()}").status_code == 401

    client.force_login(django_user_model.objects.create_user("gaveur", password="x"))
    assert submit(client, lot.id, sample.sample_id).status_code == 401
    assert published == []


def test_a_staff_api_token_works_and_a_revoked_one_does_not(client, staff, published):
    lot = make_lot()
    sample = make_sample(lot=lot)
    token, clear = api_token_create(user=staff, name="ERP", scopes=["tasks:read", "tasks:write"])
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {clear}"}

    assert submit(client, lot.id, sample.sample_id, **bearer).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert token.key_hash != clear and clear not in token.prefix + token.key_hash

    api_token_revoke(token=token)
    assert submit(client, lot.id, sample.sample_id, **bearer).status_code == 401
    wrong = {"HTTP_AUTHORIZATION": "Bearer gt_" + "x" * 43}
    assert submit(client, lot.id, sample.sample_id, **wrong).status_code == 401


def test_a_token_stops_working_when_its_user_loses_staff_status(client, staff, published):
    lot = make_lot()
    sample = make_sample(lot=lot)
    _, clear = api_token_create(user=staff, name="ERP", scopes=["tasks:read", "tasks:write"])
    staff.is_staff = False
    staff.save()
    response = submit(client, lot.id, sample.sample_id, HTTP_AUTHORIZATION=f"Bearer {clear}")
    assert response.status_code == 401


def test_create_api_token_prints_a_token_that_authenticates(client, staff, capsys):
    call_command("create_api_token", staff.username, "--name", "script", "--scope", "tasks:read")
    clear = capsys.readouterr().out.strip()
    assert clear.startswith("gt_")
    token = ApiToken.objects.get()
    assert (token.name, token.scopes) == ("script", ["tasks:read"])
    response = client.get(f"/api/tasks/status/{uuid.uuid4()}", HTTP_AUTHORIZATION=f"Bearer {clear}")
    assert response.status_code == 404
    refused = client.post(
        "/api/tasks/qr-code/generate?lot_id=1&sample_id=x", HTTP_AUTHORIZATION=f"Bearer {clear}"
    )
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"


def test_the_status_of_an_unknown_task_is_404(staff_client):
    response = staff_client.get(f"/api/tasks/status/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_task"


def test_a_submitted_task_is_pending_until_a_worker_takes_it(staff_client, published):
    lot = make_lot()
    sample = make_sample(lot=lot)
    task_id = submit(staff_client, lot.id, sample.sample_id).json()["task_id"]

    body = staff_client.get(f"/api/tasks/status/{task_id}").json()

    assert body == {"task_id": task_id, "status": "PENDING", "result": None}


def test_the_status_of_a_finished_task_has_the_seed_result_shape(staff_client):
    task_id = str(uuid.uuid4())
    result = {
        "status": "success",
        "lot_id": 3472,
        "sample_id": "ESP32_LL_01_1234",
        "product_id": "FG_LL_20260108_0001",
        "qr_code": "SQAL_3472_ESP32_LL_01_1234_FG_LL_20260108_0001_abc123def4567890",
    }
    current_app.backend.store_result(task_id, result, states.SUCCESS)

    body = staff_client.get(f"/api/tasks/status/{task_id}").json()

    assert body == {"task_id": task_id, "status": "SUCCESS", "result": result}


def test_a_refused_registration_reports_its_code_and_detail(staff_client):
    task_id = str(uuid.uuid4())
    exc = tasks.ProductRegistrationRefused("sample_not_eligible", "grade=REJECT", 422)
    current_app.backend.store_result(task_id, exc, states.FAILURE)

    body = staff_client.get(f"/api/tasks/status/{task_id}").json()

    assert body["status"] == "FAILURE"
    assert body["result"] == {
        "status": "error",
        "error": "sample_not_eligible",
        "detail": "grade=REJECT",
    }


def test_the_openapi_schema_documents_both_routes(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "post" in paths["/api/tasks/qr-code/generate"]
    assert "get" in paths["/api/tasks/status/{task_id}"]
