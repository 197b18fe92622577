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


# What a token may do beyond proving who it is; each endpoint checks its scope and its user's
# permission (a token never grants more than its user could do in the admin).
SCOPES = {
    "tasks:write": "register consumer products (POST /api/tasks/qr-code/generate)",
    "tasks:read": "read task states and results (GET /api/tasks/status/{task_id})",
    "epcis:read": "read EPCIS events (GET /api/epcis/events)",
}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(
    *, user: AbstractBaseUser, name: str, scopes: list[str] | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns it with the clear token (shown once, never stored).

    ``scopes`` (keys of ``SCOPES``) say which endpoints it may call; none, none of them."""
    unknown = sorted(set(scopes or []) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
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
    """``Authorization: Bearer gt_...``, a token of an active staff user (``request.api_token``
    holds it, for the scope check)."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        found = api_token_lookup(token)
        if found is None:
            return None
        request.user = found.user
        request.api_token = found
        return found.user


def access_refusal(request: HttpRequest, *, permission: str, scope: str) -> tuple[str, str] | None:
    """``(error, detail)`` when the caller may not use an endpoint, else None: a token needs
    ``scope``, and its user (or the session's) the Django ``permission``."""
    token = getattr(request, "api_token", None)
    if token is not None and scope not in (token.scopes or []):
        return "insufficient_scope", f"this token lacks the scope {scope}"
    if not request.user.has_perm(permission):
        return "permission_denied", f"this account lacks the permission {permission!r}"
    return None


staff_auth = [StaffTokenAuth(), StaffSessionAuth()]
