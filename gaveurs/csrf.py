"""Django's CSRF token, made with one random read and no per-character Python loop but one.

``django.middleware.csrf.get_token`` builds the cookie secret and the per-response mask with
``get_random_string``, which draws every character with ``secrets.choice``: one ``os.urandom``
system call per character, 64 per first-visit page. On the public scan page (a phone's first
and usually only visit, so always a new secret) that was a quarter of the page's CPU.

``get_token`` here is the same contract, the same token and the same cookie, with the random
characters drawn from a single ``os.urandom`` read, unbiased (bytes of 248 and above are
dropped: 248 = 4 x 62), mapped onto the alphabet by ``bytes.translate``; only the mask's
addition to the secret is a loop. Django's ``CsrfViewMiddleware`` sets the cookie and checks the
token exactly as for its own (tests/gaveurs/test_csrf.py checks both against Django's
middleware). One difference: a client that sent a valid cookie holding this very secret is not
sent it again (Django re-sends it on every page that uses the token, only to push its expiry a
year further): no ``Set-Cookie`` to build on a returning visitor's pages.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.http import HttpRequest
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH

_CHARS = CSRF_ALLOWED_CHARS.encode("ascii")
_BASE = len(_CHARS)
_LIMIT = 256 - 256 % _BASE  # bytes below this map onto the alphabet without bias
# A random byte below _LIMIT becomes the character of its value modulo 62; bytes from _LIMIT up
# are deleted by the same ``translate`` call.
_TO_CHAR = bytes(_CHARS[b % _BASE] for b in range(_LIMIT)) + bytes(256 - _LIMIT)
_BIASED = bytes(range(_LIMIT, 256))
_INDEX = {char: i for i, char in enumerate(_CHARS)}
# The character of (index(secret character) + index(mask character)) mod 62, at
# secret character * 128 + mask character (both ASCII).
_ADD = bytearray(128 * 128)
for _s, _si in _INDEX.items():
    for _m, _mi in _INDEX.items():
        _ADD[_s * 128 + _m] = _CHARS[(_si + _mi) % _BASE]
_ADD = bytes(_ADD)


def _random_chars(count: int) -> bytes:
    """``count`` characters of the alphabet, uniform, from the OS's CSPRNG."""
    out = b""
    while len(out) < count:
        # 10% more bytes than needed covers the ~3% that are dropped, nearly always in one read.
        out += os.urandom(count + count // 10 + 4).translate(_TO_CHAR, _BIASED)
    return out[:count]


def _random_indexes(count: int) -> list[int]:
    """``count`` uniform indexes into the alphabet, from the OS's CSPRNG."""
    return [_INDEX[c] for c in _random_chars(count)]


def get_token(request: HttpRequest) -> str:
    """The masked CSRF token for a form, as ``django.middleware.csrf.get_token``: reuses the
    request's secret (cookie) or creates one, and flags the middleware to send the cookie
    unless the client holds it already."""
    secret = request.META.get("CSRF_COOKIE")
    if secret:
        mask = _random_chars(CSRF_SECRET_LENGTH)
        secret_chars = secret.encode("ascii")
        if request.COOKIES.get(settings.CSRF_COOKIE_NAME) != secret:
            # A secret made or changed during this request (or a pre-Django 4.0 masked cookie,
            # which Django then replaces with the plain secret): the client must get it.
            request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True
    else:
        drawn = _random_chars(2 * CSRF_SECRET_LENGTH)
        secret_chars, mask = drawn[:CSRF_SECRET_LENGTH], drawn[CSRF_SECRET_LENGTH:]
        request.META["CSRF_COOKIE"] = secret_chars.decode("ascii")
        request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True
    cipher = bytes([_ADD[s * 128 + m] for s, m in zip(secret_chars, mask, strict=True)])
    return (mask + cipher).decode("ascii")
