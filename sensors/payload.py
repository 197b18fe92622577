"""How a sample's full message is stored: its JSON text as received, zstd-compressed, in a bytea.

Why not jsonb (what the design first planned, "PostgreSQL compresses it"): a station message is
190 KB, and PostgreSQL spent more on that one column than the server spent on everything else.
Measured once by hand on the real fixture when the storage was chosen (no bench re-prints these
figures; ``bench/ingest.py`` prints today's server and PostgreSQL CPU per stored message), per
row (PostgreSQL 16 backend CPU; pgserver is built without lz4, so its only TOAST codec is pglz):

  ===============================  ==============  ==================
  payload column                   backend CPU     on disk (row+TOAST)
  ===============================  ==============  ==================
  jsonb, pglz (the default)        5.4 ms          79 KB
  jsonb, STORAGE EXTERNAL          2.5 ms          172 KB
  json, STORAGE EXTERNAL           1.1 ms          193 KB
  bytea, zstd level 1 in Python    0.3 ms          57 KB
  ===============================  ==============  ==================

zstd level 1 costs the server 0.34 ms per 190 KB message, on a writer thread (python-zstandard
releases the GIL while it compresses), and is smaller than pglz. Other codecs and levels, same
message: zstd levels -7 to -1 were no faster and 88-99 KB; levels 2-3 twice as slow for no gain;
lz4 0.18 ms but 100 KB (and more TOAST work for PostgreSQL); no compression 190 KB a row.

The price: PostgreSQL cannot look inside the payload (no ``payload->'key'`` in SQL, no
``payload__key`` lookups); the fields we query are columns. The read path is this module:
``SensorSample.payload`` is the decoded JSON value and ``payload_text(bytes)`` the text exactly
as received. Every row holds one zstd frame (RFC 8878), so outside Python ``zstd -d`` reads it,
e.g. ``psql -Atc "SELECT encode(payload, 'base64') FROM sqal_sensor_samples WHERE id = 1" |
base64 -d | zstd -d``. The message is validated before it is stored (``schemas.parse_message``):
JSON without NaN, infinities or NUL characters, so it could go back into a jsonb column
(migration 0004 does that when reversed).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import zstandard
from django.db import models

LEVEL = 1
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    # A compression context serves one thread at a time: one per writer thread.
    found = getattr(_local, "compressor", None)
    if found is None:
        found = _local.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return found


def _decompressor() -> zstandard.ZstdDecompressor:
    found = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


def compress_text(text: str) -> bytes:
    """The stored form of a message's JSON text."""
    return _compressor().compress(text.encode())


def payload_text(data: bytes | memoryview) -> str:
    """The JSON text a stored payload holds (exactly the message as received)."""
    return _decompressor().decompress(bytes(data)).decode()


class CompressedJSONField(models.BinaryField):
    """A JSON value stored as its zstd-compressed JSON text (bytea); Python sees the value.

    Writes through the ORM (factories, demo data) serialise the value with ``json.dumps``;
    ingestion stores the station's own text (``compress_text``) without re-serialising it.
    """

    description = "JSON, stored zstd-compressed"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return json.loads(payload_text(value))

    def to_python(self, value):
        if isinstance(value, bytes | memoryview):
            return json.loads(payload_text(value))
        if isinstance(value, str):  # serialised form (value_to_string)
            return json.loads(value)
        return value

    def get_prep_value(self, value: Any):
        if value is None:
            return None
        return compress_text(json.dumps(value))

    def value_to_string(self, obj) -> str:
        return json.dumps(self.value_from_object(obj))

    def deconstruct(self):
        # The column is a plain bytea: migrations, which never import app code, see the
        # BinaryField it is stored as.
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.BinaryField", args, kwargs
