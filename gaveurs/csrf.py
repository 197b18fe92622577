"""Django's CSRF token, made with one random read instead of sixty-four.

``django.middleware.csrf.get_token`` builds the cookie secret and the per-response mask with
``get_random_string``, which draws every character with ``secrets.choice``: one ``os.urandom``
system call per character, 64 per first-visit page. On the public scan page (a phone's first
and usually only visit, so always a new secret) that was a quarter of the page's CPU.

``get_token`` here is the same contract, the same token and the same cookie, with the random
characters drawn from a single ``os.urandom`` read, unbiased (bytes of 248 and above are
dropped: 248 = 4 x 62). Django's ``CsrfViewMiddleware`` sets the cookie and checks the token
exactly as for its own (tests/gaveurs/test_csrf.py checks both against Django's middleware).
"""

from __future__ import annotations

import os

from django.http import HttpRequest
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH

_CHARS = CSRF_ALLOWED_CHARS
_BASE = len(_CHARS)
_LIMIT = 256 - 256 % _BASE  # bytes below this map onto the alphabet without bias
_INDEX = {char: i for i, char in enumerate(_CHARS)}


def _random_indexes(count: int) -> list[int]:
    """``count`` uniform indexes into the alphabet, from the OS's CSPRNG."""
    out: list[int] = []
    while len(out) < count:
        # 10% more bytes than needed covers the ~3% that are dropped, nearly always in one read.
        out.extend(b % _BASE for b in os.urandom(count + count // 10 + 4) if b < _LIMIT)
    return out[:count]


def get_token(request: HttpRequest) -> str:
    """The masked CSRF token for a form, as ``django.middleware.csrf.get_token``: reuses the
    request's secret (cookie) or creates one, and flags the middleware to send the cookie."""
    secret = request.META.get("CSRF_COOKIE")
    if secret:
        secret_indexes = [_INDEX[c] for c in secret]
        mask = _random_indexes(CSRF_SECRET_LENGTH)
    else:
        drawn = _random_indexes(2 * CSRF_SECRET_LENGTH)
        secret_indexes, mask = drawn[:CSRF_SECRET_LENGTH], drawn[CSRF_SECRET_LENGTH:]
        request.META["CSRF_COOKIE"] = "".join(_CHARS[i] for i in secret_indexes)
    request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True
    cipher = "".join(_CHARS[(s + m) % _BASE] for s, m in zip(secret_indexes, mask, strict=True))
    return "".join(_CHARS[m] for m in mask) + cipher
