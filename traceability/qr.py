"""QR images of consumer products (segno), their on-disk cache, and GS1 Digital Link paths.

A product's QR encodes the URL a phone camera opens directly: ``PUBLIC_BASE_URL/p/<qr_code>``.
A product never changes, so each image is rendered once and kept under
``MEDIA_ROOT/qr/``, named after a hash of what it encodes and how it is drawn: changing
``PUBLIC_BASE_URL`` (or the drawing options) gives new files, never a stale image.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import segno
from django.conf import settings

from gaveurs.gs1 import gs1_check_digit

# Printed labels get scratched: level M restores ~15 % of the symbol, and segno raises it
# further when the version has room to spare (boost_error).
ERROR_LEVEL = "m"
BORDER = 4  # the quiet zone the QR specification asks for, in modules
FORMATS = {"svg": "image/svg+xml", "png": "image/png"}
PNG_SCALE_DEFAULT = 8
PNG_SCALE_MAX = 40
RENDER_VERSION = "1"  # bump when the drawing changes, to leave old cached files behind


def scan_path(qr_code: str) -> str:
    """Path of the public scan page of a QR code (route ``feedback:scan``)."""
    return "/p/" + quote(qr_code, safe="")


def scan_url(qr_code: str) -> str:
    """The absolute URL a product's QR encodes."""
    return settings.PUBLIC_BASE_URL + scan_path(qr_code)


@dataclass(frozen=True)
class QrImage:
    content: bytes
    content_type: str
    etag: str


def _render(data: str, kind: str, scale: int) -> bytes:
    qr = segno.make(data, error=ERROR_LEVEL, boost_error=True, micro=False)
    out = io.BytesIO()
    if kind == "svg":
        # Unit-less size so the image scales to the label or page that holds it.
        qr.save(out, kind="svg", border=BORDER, xmldecl=False, svgns=True, omitsize=True)
    else:
        qr.save(out, kind="png", border=BORDER, scale=scale)
    return out.getvalue()


def qr_render(data: str, *, kind: str = "svg", scale: int = PNG_SCALE_DEFAULT) -> bytes:
    """Render ``data`` as a QR image, without cache (the benchmark measures this)."""
    if kind not in FORMATS:
        raise ValueError(f"unknown QR image format {kind!r}; expected one of {sorted(FORMATS)}")
    return _render(data, kind, scale)


def cache_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "qr"


def product_qr_image(qr_code: str, *, kind: str = "svg", scale: int = PNG_SCALE_DEFAULT) -> QrImage:
    """The QR image of a product, from the cache or rendered and cached (atomic write)."""
    if kind not in FORMATS:
        raise ValueError(f"unknown QR image format {kind!r}; expected one of {sorted(FORMATS)}")
    scale = max(1, min(int(scale), PNG_SCALE_MAX))
    data = scan_url(qr_code)
    options = f"{RENDER_VERSION}|{kind}|{ERROR_LEVEL}|{BORDER}|{scale if kind == 'png' else ''}"
    digest = hashlib.sha256(f"{options}|{data}".encode()).hexdigest()
    path = cache_dir() / digest[:2] / f"{digest}.{kind}"
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        content = _render(data, kind, scale)
        _write_atomically(path, content)
    return QrImage(content=content, content_type=FORMATS[kind], etag=f'"{digest[:32]}"')


def _write_atomically(path: Path, content: bytes) -> None:
    """Write then rename, so a concurrent reader sees the whole file or no file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, path)
    except OSError:
        # A read-only or full disk costs a re-render next time, never a failed request.
        return


# --- GS1 Digital Link ------------------------------------------------------------------------

# GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1).
_CSET82 = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}$")


class Gs1PathError(ValueError):
    """A malformed GS1 Digital Link path; the message names the part and the rule."""


@dataclass(frozen=True)
class Gs1Key:
    gtin: str  # always 14 digits
    lot: str
    serial: str


gtin_check_digit = gs1_check_digit  # the one implementation lives in gaveurs/gs1.py


def gtin_normalize(value: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits; raises Gs1PathError when malformed or badly checked."""
    if not value.isascii() or not value.isdigit() or len(value) not in (8, 12, 13, 14):
        raise Gs1PathError("GTIN (AI 01) must be 8, 12, 13 or 14 digits")
    if gtin_check_digit(value[:-1]) != int(value[-1]):
        raise Gs1PathError("GTIN (AI 01) check digit is wrong")
    return value.zfill(14)


def gs1_parse(path: str) -> Gs1Key:
    """Parse ``01/<gtin>/10/<lot>/21/<serial>`` (percent-decoded, without leading slash)."""
    parts = path.strip("/").split("/")
    if len(parts) != 6 or parts[0] != "01" or parts[2] != "10" or parts[4] != "21":
        raise Gs1PathError("expected /01/<GTIN>/10/<lot>/21/<serial>")
    gtin = gtin_normalize(parts[1])
    for name, value in (("lot (AI 10)", parts[3]), ("serial (AI 21)", parts[5])):
        if not _CSET82.match(value):
            raise Gs1PathError(f"{name} must be 1 to 20 characters of GS1 character set 82")
    return Gs1Key(gtin=gtin, lot=parts[3], serial=parts[5])


def gs1_digital_link_path(*, gtin: str, lot_code: str, serial: str) -> str | None:
    """The Digital Link path of a product, or None when its site has no (valid) GTIN.

    ``serial`` is the product's random ``gs1_serial``, never its sequential product id."""
    if not gtin:
        return None
    try:
        key = gs1_parse(f"01/{gtin}/10/{lot_code}/21/{serial}")
    except Gs1PathError:
        return None
    return "/" + "/".join(
        ["01", key.gtin, "10", quote(key.lot, safe=""), "21", quote(key.serial, safe="")]
    )
