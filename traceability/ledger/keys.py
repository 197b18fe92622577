"""Ed25519 keys of the log and signed tree heads (RFC 6962 ``TreeHeadSignature`` layout)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import struct
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from traceability.ledger.records import _time
from traceability.models import LedgerHead

DEV_KEY_LABEL = b"gaveurs-trace ledger development key|"


# --- Keys and signed tree heads -----------------------------------------------------------


def _decode_key(value: str, what: str) -> bytes:
    value = value.strip()
    try:
        raw = bytes.fromhex(value) if len(value) == 64 else base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{what} must be 32 bytes as 64 hex digits or base64")
    return raw


@functools.lru_cache(maxsize=8)
def _private_key(configured: str, secret_key: str, production: bool) -> Ed25519PrivateKey:
    if configured:
        seed = _decode_key(configured, "LEDGER_SIGNING_KEY")
    elif production:
        raise ImproperlyConfigured("LEDGER_SIGNING_KEY must be set in production")
    else:
        seed = hashlib.sha256(DEV_KEY_LABEL + secret_key.encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def signing_key() -> Ed25519PrivateKey:
    return _private_key(
        getattr(settings, "LEDGER_SIGNING_KEY", ""),
        settings.SECRET_KEY,
        getattr(settings, "PRODUCTION", False),
    )


def public_key_bytes(key: Ed25519PrivateKey | None = None) -> bytes:
    key = key or signing_key()
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def trusted_public_keys() -> dict[str, bytes]:
    """key id -> raw public key: the current key and any listed in LEDGER_TRUSTED_PUBLIC_KEYS."""
    return dict(_trusted_keys(*_key_settings()))


def _key_settings() -> tuple[str, str, bool, tuple[str, ...]]:
    return (
        getattr(settings, "LEDGER_SIGNING_KEY", ""),
        settings.SECRET_KEY,
        getattr(settings, "PRODUCTION", False),
        tuple(getattr(settings, "LEDGER_TRUSTED_PUBLIC_KEYS", [])),
    )


@functools.lru_cache(maxsize=8)
def _trusted_keys(
    configured: str, secret_key: str, production: bool, trusted: tuple[str, ...]
) -> tuple[tuple[str, bytes], ...]:
    keys = [public_key_bytes(_private_key(configured, secret_key, production))]
    for value in trusted:
        keys.append(_decode_key(value, "LEDGER_TRUSTED_PUBLIC_KEYS entry"))
    return tuple((key_id(k), k) for k in keys)


def head_message(*, tree_size: int, root_hash: bytes, timestamp_ms: int) -> bytes:
    """RFC 6962 §3.5 TreeHeadSignature: version v1 (0), tree_hash (1), timestamp, size, root."""
    return struct.pack(">BBQQ32s", 0, 1, timestamp_ms, tree_size, root_hash)


def head_signature_is_valid(head: LedgerHead, keys: dict[str, bytes] | None = None) -> bool:
    public = (keys or trusted_public_keys()).get(head.key_id)
    if public is None:
        return False
    message = head_message(
        tree_size=head.tree_size, root_hash=bytes(head.root_hash), timestamp_ms=head.timestamp_ms
    )
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(bytes(head.signature), message)
    except InvalidSignature:
        return False
    return True


def head_as_dict(head: LedgerHead) -> dict[str, Any]:
    """The published form of a signed head (cached: a head never changes once signed)."""
    return head_row_as_dict(
        head.tree_size,
        bytes(head.root_hash),
        head.timestamp_ms,
        bytes(head.signature),
        head.key_id,
    )


def head_row_as_dict(
    tree_size: int, root_hash: bytes, timestamp_ms: int, signature: bytes, key: str
) -> dict[str, Any]:
    """``head_as_dict`` from a ``ledger_heads`` row's values, without building a model."""
    return dict(_head_dict(tree_size, root_hash, timestamp_ms, signature, key, _key_settings()))


@functools.lru_cache(maxsize=256)
def _head_dict(
    tree_size: int,
    root_hash: bytes,
    timestamp_ms: int,
    signature: bytes,
    key: str,
    key_settings: tuple[str, str, bool, tuple[str, ...]],
) -> tuple[tuple[str, Any], ...]:
    public = dict(_trusted_keys(*key_settings)).get(key, b"")
    return (
        ("tree_size", tree_size),
        ("root_hash", root_hash.hex()),
        ("timestamp", timestamp_ms),
        ("timestamp_iso", _time(datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC))),
        ("signature", base64.b64encode(signature).decode()),
        ("key_id", key),
        ("public_key", base64.b64encode(public).decode()),
    )


def public_key_pem() -> str:
    return (
        signing_key()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
