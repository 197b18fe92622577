"""gaveurs.csrf.get_token: Django's CSRF token and cookie, from one random read; the cookie is
not sent again to a client that holds it."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.middleware.csrf import (
    CSRF_ALLOWED_CHARS,
    CSRF_SECRET_LENGTH,
    CSRF_TOKEN_LENGTH,
    CsrfViewMiddleware,
    _mask_cipher_secret,
    _unmask_cipher_token,
)
from django.test import RequestFactory

from gaveurs import csrf

factory = RequestFactory()


def _is_token(value: str, length: int) -> bool:
    return len(value) == length and all(c in CSRF_ALLOWED_CHARS for c in value)


def test_a_first_visit_gets_a_new_secret_and_a_token_that_unmasks_to_it():
    request = factory.get("/")

    token = csrf.get_token(request)

    secret = request.META["CSRF_COOKIE"]
    assert _is_token(secret, CSRF_SECRET_LENGTH)
    assert _is_token(token, CSRF_TOKEN_LENGTH)
    assert _unmask_cipher_token(token) == secret
    assert request.META["CSRF_COOKIE_NEEDS_UPDATE"] is True


def test_a_known_secret_is_kept_and_every_token_is_masked_afresh():
    request = factory.get("/")
    request.META["CSRF_COOKIE"] = "a" * CSRF_SECRET_LENGTH

    first, second = csrf.get_token(request), csrf.get_token(request)

    assert request.META["CSRF_COOKIE"] == "a" * CSRF_SECRET_LENGTH
    assert _unmask_cipher_token(first) == _unmask_cipher_token(second) == "a" * 32
    assert first != second  # a new mask each time (BREACH)


def test_django_middleware_sets_the_cookie_and_accepts_the_token_on_post():
    get = factory.get("/")
    middleware = CsrfViewMiddleware(lambda request: HttpResponse(csrf.get_token(request)))
    middleware.process_request(get)
    response = middleware(get)
    cookie = response.cookies["csrftoken"].value
    token = response.content.decode()
    assert cookie == get.META["CSRF_COOKIE"]

    def view(request):
        return HttpResponse("ok")

    post = factory.post("/", {"csrfmiddlewaretoken": token})
    post.COOKIES["csrftoken"] = cookie
    assert middleware.process_view(post, view, (), {}) is None  # accepted

    forged = factory.post("/", {"csrfmiddlewaretoken": csrf.get_token(factory.get("/"))})
    forged.COOKIES["csrftoken"] = cookie
    rejected = middleware.process_view(forged, view, (), {})
    assert rejected is not None and rejected.status_code == 403


def test_bytes_that_would_bias_the_alphabet_are_dropped(monkeypatch):
    # 248 = 4 x 62: bytes 248..255 would make the first 8 characters likelier; they are skipped.
    draws = iter([bytes([255, 248, 0, 61, 62, 247, 250]), bytes(range(40))])
    monkeypatch.setattr(csrf.os, "urandom", lambda n: next(draws))

    indexes = csrf._random_indexes(8)

    assert indexes == [0, 61, 0, 247 % 62, 0, 1, 2, 3]


@pytest.mark.parametrize("count", [1, 32, 64, 500])
def test_random_indexes_are_as_many_as_asked_and_in_the_alphabet(count):
    indexes = csrf._random_indexes(count)
    assert len(indexes) == count and all(0 <= i < len(CSRF_ALLOWED_CHARS) for i in indexes)


def test_every_character_of_the_alphabet_is_drawn():
    drawn = set(csrf._random_indexes(20_000))
    assert drawn == set(range(len(CSRF_ALLOWED_CHARS)))


def _served(cookie: str | None):
    """A GET through Django's middleware to a view that uses the token, with this cookie."""
    get = factory.get("/")
    if cookie is not None:
        get.COOKIES["csrftoken"] = cookie
    middleware = CsrfViewMiddleware(lambda request: HttpResponse(csrf.get_token(request)))
    middleware.process_request(get)
    return middleware, middleware(get)


def _accepted(middleware, cookie: str, token: str) -> bool:
    post = factory.post("/", {"csrfmiddlewaretoken": token})
    post.COOKIES["csrftoken"] = cookie
    return middleware.process_view(post, lambda request: HttpResponse("ok"), (), {}) is None


def test_a_client_holding_its_cookie_is_not_sent_it_again_and_its_token_is_accepted():
    secret = "b" * CSRF_SECRET_LENGTH

    middleware, response = _served(secret)

    assert "csrftoken" not in response.cookies
    token = response.content.decode()
    assert _unmask_cipher_token(token) == secret
    assert _accepted(middleware, secret, token)


def test_a_malformed_cookie_is_replaced_by_a_new_secret_sent_to_the_client():
    middleware, response = _served("not a secret!")

    cookie = response.cookies["csrftoken"].value
    assert _is_token(cookie, CSRF_SECRET_LENGTH)
    assert _accepted(middleware, cookie, response.content.decode())


def test_a_masked_cookie_from_before_django_4_is_replaced_by_its_secret():
    secret = "c" * CSRF_SECRET_LENGTH

    middleware, response = _served(_mask_cipher_secret(secret))

    assert response.cookies["csrftoken"].value == secret
    assert _accepted(middleware, secret, response.content.decode())
