"""What the consumer edges keep of a request: a coarse place and a salted client hash."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

from traceability.scans import ClientOrigin, client_hash, coarse_place


def client_address(request: HttpRequest) -> str:
    """The consumer's address: ``REMOTE_ADDR``, or behind ``TRUSTED_PROXY_HOPS`` reverse proxies
    the entry that many places from the right of ``X-Forwarded-For`` (each proxy appends the
    address it received the request from; entries further left are whatever the client sent).

    With no trusted proxy the header is ignored: anyone can send it. A header shorter than the
    number of proxies or an entry that is not an IP address means the request did not come
    through them as expected: ``REMOTE_ADDR`` is used then too.
    """
    remote = request.META.get("REMOTE_ADDR", "") or ""
    hops = settings.TRUSTED_PROXY_HOPS
    if hops <= 0:
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [a for a in forwarded if a]
    if len(forwarded) < hops:
        return remote
    candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def client_origin(request: HttpRequest) -> ClientOrigin:
    """Country from a CDN header (Cloudflare's ``CF-IPCountry``) or the browser language region,
    and a daily-salted hash of the address; the address itself is never stored."""
    # request.META rather than request.headers: the latter copies every header on first use,
    # a cost the scan page (the public hot path) does not need.
    country, source = coarse_place(
        cdn_country=request.META.get("HTTP_CF_IPCOUNTRY", ""),
        accept_language=request.META.get("HTTP_ACCEPT_LANGUAGE", ""),
    )
    return ClientOrigin(
        country=country,
        place_source=source,
        client_hash=client_hash(address=client_address(request)),
    )
