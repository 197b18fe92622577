"""Whose address is hashed (rate limits, scan counts) behind reverse proxies: TRUSTED_PROXY_HOPS."""

from __future__ import annotations

import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.test import Client, RequestFactory, override_settings

from feedback.models import ConsumerFeedback
from tests.factories import RATINGS, make_product
from traceability.http import client_address, client_origin
from traceability.models import DailySalt, ScanEvent
from traceability.scans import client_hash

PROXY = "10.0.0.5"


def request(forwarded: str | None = None, remote: str = PROXY):
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    return RequestFactory().get("/p/x", REMOTE_ADDR=remote, headers=headers)


def test_without_trusted_proxies_the_forwarded_header_is_ignored():
    assert client_address(request("198.51.100.9")) == PROXY
    assert client_address(request()) == PROXY


@override_settings(TRUSTED_PROXY_HOPS=1)
def test_behind_one_proxy_the_address_it_appended_is_the_client():
    assert client_address(request("198.51.100.9")) == "198.51.100.9"
    assert client_address(request("2001:db8::7")) == "2001:db8::7"


@override_settings(TRUSTED_PROXY_HOPS=1)
@pytest.mark.django_db  # the client hash's salt of the day is in the database
def test_addresses_a_client_puts_in_the_header_itself_are_not_believed():
    # The client sent "X-Forwarded-For: 203.0.113.1, 203.0.113.2"; our proxy appended its address.
    spoofed = request("203.0.113.1, 203.0.113.2,198.51.100.9")

    assert client_address(spoofed) == "198.51.100.9"
    assert client_origin(spoofed).client_hash == client_hash(address="198.51.100.9")


@override_settings(TRUSTED_PROXY_HOPS=2)
def test_behind_two_proxies_the_address_the_outer_one_appended_is_the_client():
    # client -> CDN (appends the client) -> balancer (appends the CDN) -> app
    assert client_address(request("203.0.113.1, 198.51.100.9, 192.0.2.44")) == "198.51.100.9"


@override_settings(TRUSTED_PROXY_HOPS=2)
@pytest.mark.parametrize("forwarded", [None, "", "198.51.100.9", "203.0.113.1, not-an-ip, x"])
def test_a_header_that_did_not_come_through_the_proxies_falls_back_to_the_peer(forwarded):
    assert client_address(request(forwarded)) == PROXY


@pytest.mark.django_db
@override_settings(FEEDBACK_RATE_LIMIT=1)
def test_behind_a_proxy_each_consumer_has_a_rate_limit_of_their_own():
    products = [make_product() for _ in range(4)]

    def send(client, product):
        return client.post(f"/p/{product.qr_code}/avis", RATINGS).status_code

    first = Client(REMOTE_ADDR=PROXY, headers={"X-Forwarded-For": "198.51.100.9"})
    second = Client(REMOTE_ADDR=PROXY, headers={"X-Forwarded-For": "198.51.100.10"})

    with override_settings(TRUSTED_PROXY_HOPS=1):
        assert [send(first, products[0]), send(first, products[1])] == [200, 429]
        assert send(second, products[1]) == 200

    # Without the setting every consumer is the proxy: one bucket for all of them.
    assert [send(first, products[2]), send(second, products[3])] == [200, 429]
    assert ConsumerFeedback.objects.count() == 3


@pytest.mark.django_db
@override_settings(TRUSTED_PROXY_HOPS=1)
def test_scans_behind_a_proxy_are_told_apart_by_the_forwarded_address():
    product = make_product()
    for forwarded in ["198.51.100.9", "203.0.113.7, 198.51.100.9", "198.51.100.10"]:
        Client(REMOTE_ADDR=PROXY, headers={"X-Forwarded-For": forwarded}).get(
            f"/p/{product.qr_code}"
        )

    hashes = list(ScanEvent.objects.order_by("id").values_list("client_hash", flat=True))
    assert hashes[0] == hashes[1] == client_hash(address="198.51.100.9")
    assert hashes[2] == client_hash(address="198.51.100.10")


@pytest.mark.django_db
def test_the_client_hash_cannot_be_reversed_with_the_secret_key_and_its_salt_dies_with_its_day():
    cache.clear()
    stored = client_hash(address="198.51.100.9", day="2026-03-01")
    # What an attacker holding SECRET_KEY would try, for every address: it never matches.
    for key in [settings.SECRET_KEY.encode(), b""]:
        for message in [b"2026-03-01|198.51.100.9", b"198.51.100.9"]:
            guess = hmac.new(key, message, hashlib.sha256).hexdigest()[:16]
            assert guess != stored
    salt = DailySalt.objects.get(day="2026-03-01").salt
    assert len(bytes(salt)) == 32
    # Every process of the deployment uses the same salt that day (read from the database).
    cache.clear()
    assert client_hash(address="198.51.100.9", day="2026-03-01") == stored
    # The next day's first hash deletes the salt: that day's hashes can no longer be linked.
    client_hash(address="198.51.100.9", day="2026-03-02")
    assert list(DailySalt.objects.values_list("day", flat=True).order_by("day")) == [
        date(2026, 3, 2)
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_hashes_of_a_day_share_one_salt():
    def first_hash(n: int) -> str:
        try:
            cache.clear()
            return client_hash(address="198.51.100.9", day="2026-04-01")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        hashes = set(pool.map(first_hash, range(32)))
    assert len(hashes) == 1
    assert DailySalt.objects.filter(day="2026-04-01").count() == 1
