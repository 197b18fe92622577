"""HTTP edges: no input reaches a 5xx, JSON bodies only, no cross-site writes, one error shape.

The sweep walks every route of the URLconf and every operation of the OpenAPI schema with NUL
characters, lone surrogates, over-long strings and wrong types, anonymous and as a superuser,
and asserts that nothing answers a server error.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from feedback.models import ConsumerFeedback
from gaveurs.api import api
from tests.factories import make_lot, make_sample
from traceability.models import ConsumerProduct
from traceability.services import product_register

pytestmark = pytest.mark.django_db

RATINGS = {
    "overall_rating": 5,
    "taste_rating": 4,
    "texture_rating": 4,
    "appearance_rating": 5,
    "value_rating": 4,
}
ERROR_KEYS = {"success", "error", "field", "rule", "detail"}


@pytest.fixture
def product(settings) -> ConsumerProduct:
    settings.FEEDBACK_RATE_LIMIT = 10**6
    lot = make_lot()
    sample = make_sample(lot=lot)
    registered = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    return ConsumerProduct.objects.get(product_id=registered.product_id)


def post_feedback(client: Client, body: Any, content_type: str = "application/json", **headers):
    return client.post("/api/consumer/feedback", body, content_type=content_type, headers=headers)


def assert_error_shape(response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert ERROR_KEYS <= set(body), body
    assert (body["success"], body["error"]) == (False, error), body
    assert body["detail"]
    return body


# --- content types and origins ---------------------------------------------------------------


def test_a_valid_review_sent_as_text_plain_is_refused_with_415(client, product):

    body = json.dumps({"qr_code": product.qr_code, **RATINGS})
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]:
        response = post_feedback(client, body, content_type=content_type)
        error = assert_error_shape(response, 415, "unsupported_media_type")
        assert error["rule"] == "content_type_json"
    assert not ConsumerFeedback.objects.exists()


def test_a_review_posted_from_another_sites_page_is_refused(client, product):
    body = {"qr_code": product.qr_code, **RATINGS}
    for headers in [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ]:
        error = assert_error_shape(
            post_feedback(client, body, **headers), 403, "cross_site_request"
        )
        assert error["field"] == "Origin"
    assert not ConsumerFeedback.objects.exists()


def test_a_review_from_our_own_page_or_a_server_client_is_accepted(client, product, settings):
    response = post_feedback(
        client, {"qr_code": product.qr_code, **RATINGS}, Origin="http://testserver"
    )
    assert response.status_code == 201
    settings.FEEDBACK_RATE_LIMIT = 10**6
    other = product_register(
        lot_id=product.lot_id, sample_id=make_sample(lot=product.lot).sample_id, site_code="LL"
    )
    assert post_feedback(client, {"qr_code": other.qr_code, **RATINGS}).status_code == 201


def test_json_with_a_charset_or_a_json_suffix_is_json(client, product):
    response = post_feedback(
        client,
        {"qr_code": product.qr_code, **RATINGS},
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 201


# --- strings PostgreSQL cannot store ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("comment", "a\u0000b", "no_nul"),
        ("qr_code", "SQAL\u0000", "no_nul"),
        ("comment", "a\ud800b", "valid_unicode"),
        ("qr_code", "\udfff", "valid_unicode"),
    ],
)
def test_nul_and_lone_surrogates_in_a_json_body_are_422_naming_the_field(
    client, product, field, value, rule
):

    body = {"qr_code": product.qr_code, **RATINGS, field: value}
    # json.dumps escapes both as \\u0000 / \\ud800, exactly what a hostile client sends.
    response = post_feedback(client, json.dumps(body))
    error = assert_error_shape(response, 422, "validation_error")
    assert (error["field"], error["rule"]) == (field, rule)
    assert not ConsumerFeedback.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/api/ledger/proof/abc%00",
        "/api/consumer/scan/SQAL_1_x_FG_LL_20260101_0001_%00",
        "/api/tasks/status/%00",
        "/api/ledger/consistency?from=%00",
    ],
)
def test_nul_in_an_api_path_or_query_is_a_400_in_the_error_shape(admin_client, path):
    error = assert_error_shape(admin_client.get(path), 400, "bad_request")
    assert error["rule"] == "no_nul"


@pytest.mark.parametrize("production", [False, True])
def test_nul_in_a_page_address_is_a_400_not_a_500(client, product, settings, production):
    if production:
        settings.DEBUG = False
    for path in [f"/p/{product.qr_code}%00", "/p/%00", f"/p/{product.qr_code}?lang=%00"]:
        response = client.get(path)
        assert response.status_code == 400, path
        assert b"Traceback" not in response.content


# --- OpenAPI --------------------------------------------------------------------------------


def test_the_openapi_schema_documents_every_error_status_in_the_one_shape(client):
    raw = client.get("/api/openapi.json").content.decode()
    pairs_seen: list[list[str]] = []
    json.loads(raw, object_pairs_hook=lambda pairs: pairs_seen.append([k for k, _ in pairs]))
    assert all(len(keys) == len(set(keys)) for keys in pairs_seen)  # no key twice in an object
    schema = json.loads(raw)
    operations = {
        f"{method.upper()} {path}": op
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
    }
    feedback = operations["POST /api/consumer/feedback"]["responses"]
    assert {"400", "403", "404", "409", "413", "415", "422", "429"} <= set(feedback)
    tasks = operations["POST /api/tasks/qr-code/generate"]["responses"]
    assert {"401", "403", "422"} <= set(tasks)
    for op in operations.values():
        for code, response in op["responses"].items():
            if int(code) >= 400:
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith(("/ApiErrorOut", "/ValidationErrorOut")), (code, ref)
    error_schema = schema["components"]["schemas"]["ApiErrorOut"]
    assert ERROR_KEYS <= set(error_schema["properties"])


# --- the sweep -------------------------------------------------------------------------------

HOSTILE_SEGMENTS = [
    "%00",
    "a%00b",
    "%ED%A0%80",  # a UTF-16 surrogate encoded as UTF-8: invalid
    "x" * 3000,
    "-1",
    "9" * 30,
    "%2F..%2F",
]


def _walk(patterns: list, prefix: str = "") -> list[str]:
    routes = []
    for p in patterns:
        text = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            routes += _walk(p.url_patterns, text)
        elif isinstance(p, URLPattern):
            routes.append(text)
    return routes


def _fill(route: str, value: str) -> str:
    """A concrete path from a route (path() or re_path() syntax) with every parameter = value."""
    route = re.sub(r"<(?:\w+:)?\w+>", value, route)  # path() converters
    route = re.sub(r"\(\?P<\w+>[^)]*\)", value, route)  # named regex groups
    route = re.sub(r"\(\?:([^()]*)\)\??", r"\1", route)
    route = route.replace("^", "").replace("$", "").replace("\\", "")
    route = re.sub(r"[?*+]", "", route)
    return "/" + route.lstrip("/")


def _routes() -> list[str]:
    return sorted({r for r in _walk(get_resolver().url_patterns) if "api/" not in r[:4]})


@pytest.fixture
def superuser_client():
    user = get_user_model().objects.create_superuser("sweeper", "s@example.org", "pw-sweep-123")
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def test_no_route_answers_a_server_error_to_hostile_input(product, superuser_client):
    anonymous = Client(raise_request_exception=False)
    failures = []
    routes = _routes()
    assert len(routes) > 50  # the admin's routes are in the walk
    for route in routes:
        for value in HOSTILE_SEGMENTS:
            path = _fill(route, value)
            for client in (anonymous, superuser_client):
                for method, kwargs in [
                    ("get", {}),
                    ("get", {"data": {"q": "\x00", "page": "x" * 500, "o": "-1"}}),
                    (
                        "post",
                        {
                            "data": "field=a%00b&comment=%ED%A0%80&csrfmiddlewaretoken=x",
                            "content_type": "application/x-www-form-urlencoded",
                        },
                    ),
                    ("post", {"data": '{"a": "\\u0000"}', "content_type": "application/json"}),
                ]:
                    response = getattr(client, method)(path, **kwargs)
                    if response.status_code >= 500:
                        failures.append((method, path[:80], response.status_code))
    assert not failures, failures[:20]


def _api_operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = api.get_openapi_schema()
    return [
        (method.upper(), path, op)
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
    ]


HOSTILE_VALUES: list[Any] = [
    "\u0000",
    "a\u0000b",
    "\ud800",
    "x" * 5000,
    -1,
    10**40,
    [],
    {"a": "\u0000"},
    None,
    True,
    1.5,
]


def test_no_api_operation_answers_a_server_error_to_hostile_input(
    product, superuser_client, settings
):

    settings.FEEDBACK_RATE_LIMIT = 10**6
    anonymous = Client(raise_request_exception=False)
    failures = []
    operations = _api_operations()
    assert len(operations) >= 6
    for method, path, op in operations:
        params = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")]
        body_schema = (
            op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        )
        properties = list(_properties(body_schema)) or ["qr_code"]
        for value in HOSTILE_VALUES:
            text = value if isinstance(value, str) else json.dumps(value)
            concrete = path
            query = {}
            for p in params:
                if p["in"] == "path":
                    concrete = concrete.replace(
                        "{" + p["name"] + "}", quote(text, safe="", errors="surrogatepass")
                    )
                else:
                    query[p["name"]] = text
            qs = "&".join(
                f"{k}={quote(v, safe='', errors='surrogatepass')}" for k, v in query.items()
            )
            url = concrete + ("?" + qs if qs else "")
            body = json.dumps({k: value for k in properties})
            for client in (anonymous, superuser_client):
                if method == "GET":
                    response = client.get(url)
                else:
                    response = client.post(url, body, content_type="application/json")
                if response.status_code >= 500:
                    failures.append((method, url[:80], repr(value)[:20], response.status_code))
                elif response.status_code >= 400:
                    assert ERROR_KEYS <= set(response.json()), (url, response.content[:200])
    assert not failures, failures[:20]


def _properties(schema: dict[str, Any] | None) -> list[str]:
    if not schema:
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = api.get_openapi_schema()["components"]["schemas"][name]
    return list(schema.get("properties", {}))


def test_celery_task_results_are_read_only_in_the_admin(superuser_client):
    assert superuser_client.get("/admin/django_celery_results/taskresult/add/").status_code == 403
    for _ in range(2):
        response = superuser_client.post(
            "/admin/django_celery_results/taskresult/add/", {"task_id": ""}
        )
        assert response.status_code == 403
