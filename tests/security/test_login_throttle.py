"""Admin logins are throttled (django-axes): wrong passwords lock the username for that address."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import make_staff

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def attempt(client: Client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_wrong_passwords_lock_the_account_for_that_address(settings):
    make_staff("qualite", password="the-right-password-1")
    client = Client()
    answers = [attempt(client, "qualite", f"guess-{i}").status_code for i in range(8)]
    # AXES_FAILURE_LIMIT = 5: the fifth wrong password is the one that locks.
    assert answers[:4] == [200] * 4  # the form again, with its error
    assert set(answers[4:]) == {429}
    # Locked: even the right password is refused from there for the cool-off time.
    assert attempt(client, "qualite", "the-right-password-1").status_code == 429
    # The same user from another address, and another user from this one, still log in.
    assert attempt(Client(), "qualite", "the-right-password-1", "198.51.100.4").status_code == 302
    make_staff("analyste", password="another-password-2")
    assert attempt(Client(), "analyste", "another-password-2").status_code == 302


def test_a_success_resets_the_count(settings):
    make_staff("qualite", password="the-right-password-1")
    client = Client()
    for _ in range(4):
        assert attempt(client, "qualite", "wrong").status_code == 200
    assert attempt(client, "qualite", "the-right-password-1").status_code == 302
    for _ in range(4):
        assert attempt(Client(), "qualite", "wrong").status_code == 200


def test_behind_trusted_proxies_the_forwarded_address_is_the_one_locked(settings):
    settings.TRUSTED_PROXY_HOPS = 1
    make_staff("qualite", password="the-right-password-1")
    for _ in range(6):
        Client().post(
            LOGIN,
            {"username": "qualite", "password": "wrong"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="203.0.113.9",
        )
    other_consumer = Client().post(
        LOGIN,
        {"username": "qualite", "password": "the-right-password-1"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.77",
    )
    assert other_consumer.status_code == 302  # the proxy's own address is not what got locked
