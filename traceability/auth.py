"""Who may call the staff API: a logged-in staff session, or a staff user's API token.

Tokens look like ``gt_<43 url-safe characters>`` (256 random bits). Only their SHA-256 is stored
(``ApiToken.key_hash``): a fast hash is enough for a random secret of that length, and it lets
the lookup be a single indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer, SessionAuth

from traceability.models import ApiToken

TOKEN_PREFIX = "gt_"
# last_used_at is informative; writing it on every request would double the writes of a
# polling client, so it is refreshed at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(
    *, user: AbstractBaseUser, name: str, scopes: list[str] | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns it with the clear token (shown once, never stored).

    ``scopes`` grant more than the staff API, e.g. ``["epcis:read"]``."""
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=clear[: len(TOKEN_PREFIX) + 6],
        key_hash=_hash(clear),
        scopes=sorted(set(scopes or [])),
    )
    return token, clear


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def api_token_user(clear: str) -> AbstractBaseUser | None:
    """The active staff user a token stands for, or None (unknown, revoked, or not staff)."""
    token = api_token_lookup(clear)
    return token.user if token is not None else None


def api_token_lookup(clear: str) -> ApiToken | None:
    """The valid token (of an active staff user) ``clear`` stands for, with its user, or None."""
    if not clear.startswith(TOKEN_PREFIX) or len(clear) > 100:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_hash(clear), revoked_at__isnull=True)
        .first()
    )
    if token is None or not (token.user.is_active and token.user.is_staff):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


class StaffSessionAuth(SessionAuth):
    """A Django session of an active staff user (CSRF-checked, like any session request)."""

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_active and user.is_staff:
            return user
        return None


class StaffTokenAuth(HttpBearer):
    """``Authorization: Bearer gt_...``, a token of an active staff user."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = api_token_user(token)
        if user is not None:
            request.user = user
        return user


staff_auth = [StaffTokenAuth(), StaffSessionAuth()]
