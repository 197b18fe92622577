"""What the consumer edges keep of a request: a coarse place and a salted client hash."""

from __future__ import annotations

from django.http import HttpRequest

from feedback.services import ClientOrigin, client_hash, coarse_place


def client_origin(request: HttpRequest) -> ClientOrigin:
    """Country from a CDN header (Cloudflare's ``CF-IPCountry``) or the browser language region,
    and a daily-salted hash of the address; the address itself is never stored."""
    country, source = coarse_place(
        cdn_country=request.headers.get("CF-IPCountry", ""),
        accept_language=request.headers.get("Accept-Language", ""),
    )
    address = request.META.get("REMOTE_ADDR", "") or ""
    return ClientOrigin(
        country=country, place_source=source, client_hash=client_hash(address=address)
    )
