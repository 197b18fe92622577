"""The GS1-Conformant Digital Link resolver (GS1-Conformant Resolver standard 1.2), for GTINs.

Three levels of identification, all uncompressed Digital Link paths on ``PUBLIC_BASE_URL``:

| path | resolves to (default link) |
| --- | --- |
| ``/01/<gtin>`` | the product class page (what it is, its sites, its recent lots) |
| ``/01/<gtin>/10/<lot>`` | the lot page (origin, feeding dates, SQAL summary) |
| ``/01/<gtin>[/10/<lot>]/21/<serial>`` | the unit's signed scan page ``/p/<qr>`` |

The unit level answers only to the random ``gs1_serial`` printed on the label (80 bits): it is
the only level whose links lead to a QR code, a serial or a ``/p/`` URL. The class and lot levels
are built from public data and must never reveal any of those (tests/traceability/test_gs1*.py).

``linkType`` picks a link (``gs1:pip``, ``gs1:traceability``, ``gs1:review``,
``gs1:defaultLink``, as a CURIE or a full ``https://gs1.org/voc/…`` URI); one not offered falls
back to the default link. ``linkType=all`` or ``Accept: application/linkset+json`` answer the
RFC 9264 linkset. ``gs1:recallStatus`` joins the unit's links when a started recall or
withdrawal reaches it (its scan page's banner), and the lot's when one reaches any of its units
(the lot page's notice); ``traceability.recalls`` says which.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _

from gaveurs.models import Lot, Site
from traceability import qr
from traceability.models import ConsumerProduct
from traceability.recalls import recall_for_product, recalls_for_lot

GS1_VOC = "https://gs1.org/voc/"
LINK_TYPES = ("pip", "traceability", "review", "recallStatus", "defaultLink")
MAX_PATH = 200  # characters after /01/: a valid path is at most ~70
_CSET82 = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}$")
LINKSET_TYPE = "application/linkset+json"


class ResolveError(ValueError):
    """A syntax error in the Digital Link path (400); the message names the part and rule."""


@dataclass(frozen=True)
class DigitalLink:
    gtin: str  # 14 digits
    lot: str | None = None
    serial: str | None = None

    @property
    def path(self) -> str:
        parts = ["01", self.gtin]
        if self.lot is not None:
            parts += ["10", quote(self.lot, safe="")]
        if self.serial is not None:
            parts += ["21", quote(self.serial, safe="")]
        return "/" + "/".join(parts)


def parse(rest: str) -> DigitalLink:
    """Parse what follows ``/01/`` (percent-decoded): ``<gtin>[/10/<lot>][/21/<serial>]``.

    Raises ResolveError for a malformed GTIN or check digit, an AI other than 10 and 21 in the
    path, qualifiers out of order, repeated or empty, and values outside GS1 character set 82."""
    if len(rest) > MAX_PATH:
        raise ResolveError(f"the path is over {MAX_PATH} characters")
    parts = rest.split("/")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]  # one trailing slash is tolerated
    if not parts or not parts[0]:
        raise ResolveError("expected /01/<GTIN>[/10/<lot>][/21/<serial>]")
    try:
        gtin = qr.gtin_normalize(parts[0])
    except qr.Gs1PathError as exc:
        raise ResolveError(str(exc)) from None
    pairs = parts[1:]
    if len(pairs) % 2:
        raise ResolveError(f"AI {pairs[-1][:4]!r} has no value")
    values: dict[str, str] = {}
    order = ["10", "21"]
    for ai, value in zip(pairs[::2], pairs[1::2], strict=True):
        if ai not in order:
            raise ResolveError(
                f"AI {ai[:4]!r} is not a key qualifier of a GTIN this resolver supports "
                "(10 lot, 21 serial, in that order)"
            )
        if ai in values or (values and order.index(ai) < order.index(next(reversed(values)))):
            raise ResolveError("key qualifiers must appear once each, in the order 10 then 21")
        name = "lot (AI 10)" if ai == "10" else "serial (AI 21)"
        if not _CSET82.match(value):
            raise ResolveError(f"{name} must be 1 to 20 characters of GS1 character set 82")
        values[ai] = value
    return DigitalLink(gtin=gtin, lot=values.get("10"), serial=values.get("21"))


def link_type(value: str | None) -> str | None:
    """``gs1:pip`` / ``https://gs1.org/voc/pip`` / ``all`` → ``pip`` / ``all``; else None."""
    if not value:
        return None
    if value == "all":
        return "all"
    for prefix in ("gs1:", GS1_VOC, "http://gs1.org/voc/"):
        if value.startswith(prefix) and value[len(prefix) :] in LINK_TYPES:
            return value[len(prefix) :]
    return None


@dataclass(frozen=True)
class Link:
    rel: str  # a LINK_TYPES entry
    href: str
    title: str
    type: str = "text/html"
    hreflang: tuple[str, ...] = ()


@dataclass
class Resolution:
    """What an identifier resolves to and its links, default first."""

    link: DigitalLink
    description: str
    links: list[Link] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return settings.PUBLIC_BASE_URL + self.link.path

    @property
    def default(self) -> Link:
        return next(link for link in self.links if link.rel == "defaultLink")

    def pick(self, wanted: str | None) -> Link:
        """The link of that type, or the default link when it is not offered."""
        return next((link for link in self.links if link.rel == wanted), self.default)


def _absolute(path: str) -> str:
    return settings.PUBLIC_BASE_URL + path


def _languages() -> tuple[str, ...]:
    return tuple(code for code, _name in settings.LANGUAGES)


def sites_of(gtin: str) -> list[Site]:
    """The sites whose products carry this GTIN (14 digits)."""
    return [s for s in Site.objects.exclude(gtin="") if qr_gtin(s.gtin) == gtin]


def qr_gtin(value: str) -> str | None:
    try:
        return qr.gtin_normalize(value)
    except qr.Gs1PathError:
        return None


def _epcis_link(**query: str) -> Link:
    return Link(
        rel="traceability",
        href=_absolute(reverse("api:epcis_events") + "?" + urlencode(query)),
        title=_("Événements de traçabilité EPCIS 2.0 (jeton requis)"),
        type="application/ld+json",
    )


def _recall_link(href: str) -> Link:
    return Link(
        "recallStatus", href, _("Avis de rappel ou de retrait de la vente"), hreflang=_languages()
    )


def resolve(link: DigitalLink) -> Resolution | None:
    """The identified thing and its links, or None when nothing has this identifier."""
    sites = sites_of(link.gtin)
    if not sites:
        return None
    languages = _languages()
    if link.serial is not None:
        products = ConsumerProduct.objects.filter(
            site_code__in=[s.code for s in sites], gs1_serial=link.serial
        )
        if link.lot is not None:
            products = products.filter(lot_code=link.lot)
        product = products.only(
            "qr_code", "product_id", "lot_code", "lot_id", "site_code", "created_at"
        ).first()
        if product is None:
            return None
        page = _absolute(qr.scan_path(product.qr_code))
        pip = Link("pip", page, _("Fiche du produit et sa traçabilité"), hreflang=languages)
        links = [
            Link("defaultLink", page, pip.title, hreflang=languages),
            pip,
            Link("review", page + "#reviews-title", _("Donner votre avis"), hreflang=languages),
            _epcis_link(product=product.product_id),
        ]
        if recall_for_product(product) is not None:
            links.append(_recall_link(page + "#recall-banner"))
        return Resolution(
            link=link,
            description=_("Foie gras de canard, produit n° %(id)s") % {"id": product.product_id},
            links=links,
        )
    if link.lot is not None:
        lot = Lot.objects.filter(code=link.lot, site__in=sites).first()
        if lot is None or not lot.products.exists():
            return None
        page = _absolute(reverse("traceability:gs1_lot", args=[link.gtin, lot.code]))
        title = _("Lot %(lot)s : origine, gavage et contrôle qualité") % {"lot": lot.code}
        links = [
            Link("defaultLink", page, title, hreflang=languages),
            Link("pip", page, title, hreflang=languages),
            _epcis_link(lot=lot.code),
        ]
        if recalls_for_lot(lot).exists():
            links.append(_recall_link(page + "#recall"))
        return Resolution(
            link=link,
            description=_("Foie gras de canard, lot %(lot)s") % {"lot": lot.code},
            links=links,
        )
    page = _absolute(reverse("traceability:gs1_class", args=[link.gtin]))
    title = _("Foie gras de canard : le produit, ses sites et ses lots")
    return Resolution(
        link=link,
        description=_("Foie gras de canard"),
        links=[
            Link("defaultLink", page, title, hreflang=languages),
            Link("pip", page, title, hreflang=languages),
        ],
    )


def linkset(resolution: Resolution) -> dict:
    """The RFC 9264 linkset (``application/linkset+json``) in GS1's linkset schema."""
    entry: dict = {"anchor": resolution.anchor, "itemDescription": resolution.description}
    for link in resolution.links:
        target: dict = {"href": link.href, "title": link.title, "type": link.type}
        if link.hreflang:
            target["hreflang"] = list(link.hreflang)
        entry.setdefault(GS1_VOC + link.rel, []).append(target)
    return {"linkset": [entry]}


def _title_params(title: str) -> str:
    """``title`` in ASCII for every client, and ``title*`` in UTF-8 when it differs (RFC 8288)."""
    ascii_title = (
        unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().replace('"', "'")
    )
    params = f'; title="{ascii_title}"'
    if ascii_title != title:
        params += f"; title*=UTF-8''{quote(title, safe='')}"
    return params


def link_header(resolution: Resolution) -> str:
    """The ``Link`` header: the linkset, then every link with its relation type, media type,
    languages and title (RFC 8288), as the standard asks of a redirect."""
    parts = [
        f'<{resolution.anchor}?linkType=all>; rel="linkset"; type="{LINKSET_TYPE}"'
        + _title_params(_("Tous les liens de cet identifiant")),
    ]
    for link in resolution.links:
        item = f'<{link.href}>; rel="{GS1_VOC}{link.rel}"; type="{link.type}"'
        if link.hreflang:
            item += "".join(f'; hreflang="{lang}"' for lang in link.hreflang)
        parts.append(item + _title_params(link.title))
    return ", ".join(parts)


def with_query(href: str, query: list[tuple[str, str]]) -> str:
    """``href`` with the request's other query parameters passed on (the standard's default),
    before any fragment."""
    if not query:
        return href
    base, hash_, fragment = href.partition("#")
    return base + ("&" if "?" in base else "?") + urlencode(query) + hash_ + fragment


def description() -> dict:
    """The resolver description file served at ``/.well-known/gs1resolver``."""
    return {
        "name": "Gaveurs Trace",
        "resolverRoot": settings.PUBLIC_BASE_URL,
        "supportedPrimaryKeys": ["01"],
        "supportedLinkType": [
            {
                "namespace": GS1_VOC,
                "prefix": "gs1:",
                "profile": "https://gs1.org/voc/?show=linktypes",
            }
        ],
        "linkTypeDefaultCanBeLinkset": True,
        "supportedContextValuesEnumerated": [],
        "supportedContextValuesExternal": [],
    }
