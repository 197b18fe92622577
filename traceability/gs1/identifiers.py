"""How sites, lots, units and stations are named in EPCIS events and linksets.

GS1 identifiers are written as *constrained canonical* GS1 Digital Link URIs (CBV 2.0 §8.2), on
the ``https://id.gs1.org`` domain, whatever resolver prints the label:

- a unit of a site with a GTIN: ``https://id.gs1.org/01/<gtin14>/21/<gs1_serial>``;
- a site with a GLN: ``https://id.gs1.org/414/<gln>``; a station at that site (read point):
  ``https://id.gs1.org/414/<gln>/254/<device id>`` (an SGLN) when the id fits AI 254.

Where GS1 keys are missing, our own URIs under ``PUBLIC_BASE_URL`` (stable, never derived from
anything secret; they are names, the server need not answer them):

| thing | URI |
| --- | --- |
| site without GLN | ``<base>/id/site/<code>`` |
| station at a site without GLN (read point) | ``<base>/id/site/<code>/station/<device id>`` |
| station (``deviceID`` of sensor reports) | ``<base>/id/station/<device id>`` |
| feeding lot of ducks (an EPC class) | ``<base>/id/lot/<lot code>`` |
| unit of a site without GTIN | ``<base>/id/product/<product id>`` |
| the lot's transformation | ``<base>/id/lot/<lot code>/transformation`` |
| our vocabulary (bizStep ``feeding``, SQAL methods, extension fields ``gt:``) | ``<base>/voc/`` |
"""

from __future__ import annotations

import re
from functools import cache
from urllib.parse import quote

from django.conf import settings

from traceability import qr

GS1_DOMAIN = "https://id.gs1.org"
_AI254 = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}$")


def base() -> str:
    return settings.PUBLIC_BASE_URL


def vocabulary() -> str:
    """Namespace of our own terms (prefix ``gt:`` in the JSON-LD context)."""
    return base() + "/voc/"


def _seg(value: str) -> str:
    return quote(value, safe="")


@cache
def gln_valid(gln: str) -> bool:
    return (
        len(gln) == 13
        and gln.isascii()
        and gln.isdigit()
        and qr.gtin_check_digit(gln[:-1]) == int(gln[-1])
    )


def gtin14(gtin: str) -> str | None:
    """The site's GTIN as 14 digits, or None when it has none or a malformed one."""
    if not gtin:
        return None
    try:
        return qr.gtin_normalize(gtin)
    except qr.Gs1PathError:
        return None


def site_uri(*, code: str, gln: str) -> str:
    if gln and gln_valid(gln):
        return f"{GS1_DOMAIN}/414/{gln}"
    return f"{base()}/id/site/{_seg(code)}"


def read_point_uri(*, code: str, gln: str, device_id: str | None = None) -> str:
    """The site, or a station at the site: an SGLN (GLN + extension AI 254) when possible."""
    if gln and gln_valid(gln):
        if device_id and _AI254.match(device_id):
            return f"{GS1_DOMAIN}/414/{gln}/254/{_seg(device_id)}"
        return f"{GS1_DOMAIN}/414/{gln}"
    uri = f"{base()}/id/site/{_seg(code)}"
    return f"{uri}/station/{_seg(device_id)}" if device_id else uri


def device_uri(device_id: str) -> str:
    return f"{base()}/id/station/{_seg(device_id)}"


def lot_class_uri(lot_code: str) -> str:
    return f"{base()}/id/lot/{_seg(lot_code)}"


def transformation_uri(lot_code: str) -> str:
    return f"{base()}/id/lot/{_seg(lot_code)}/transformation"


def unit_uri(*, gtin: str | None, serial: str, product_id: str) -> str:
    """``gtin`` is 14 digits (``gtin14``) or None. The serial is the random ``gs1_serial``."""
    if gtin:
        return f"{GS1_DOMAIN}/01/{gtin}/21/{_seg(serial)}"
    return f"{base()}/id/product/{_seg(product_id)}"
