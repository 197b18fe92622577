"""The live quality dashboard: pictures of a sample, the page's state, and the websocket feed.

The pictures (8×8 ToF heatmap, spectral bar chart) are SVG rendered here, so the dashboard, its
live updates and the sample's admin page show the same thing. The feed collects what the batcher
committed and sends at most one update per ``FLUSH_SECONDS`` to the ``sqal_live`` group: the
dashboard costs the same whatever the ingestion rate.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, deque
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from sensors.models import Device, QualityAlert, SensorSample
from sensors.rules import GRADES
from sensors.schemas import SPECTRAL_CHANNELS

logger = logging.getLogger(__name__)

GROUP = "sqal_live"
# Who may watch the stations (page and feed): staff allowed to view samples; a staff account
# without that permission is refused.
LIVE_PERMISSION = "sensors.view_sensorsample"
RECENT = 5  # earlier samples listed under a station's latest one
# Staff who may acknowledge and resolve alerts from the dashboard.
ALERT_PERMISSION = "sensors.change_qualityalert"
UNRESOLVED = [QualityAlert.Status.OPEN, QualityAlert.Status.ACKNOWLEDGED]
# The CSRF token of live-rendered forms: the page puts its own in their place (dashboard.js).
LIVE_CSRF_PLACEHOLDER = "live-csrf-placeholder"
FLUSH_SECONDS = 0.5
SPECTRAL_COLOURS = [
    "#7b2fbe",
    "#3f3fd8",
    "#1f8fe0",
    "#14b39b",
    "#4cbb17",
    "#e3c21a",
    "#f08a1c",
    "#d9342b",
    "#9e9e9e",
    "#5a2323",
]


def _ramp(t: float) -> str:
    stops = [(0.0, (13, 8, 135)), (0.5, (204, 71, 120)), (1.0, (240, 249, 33))]
    for (t0, c0), (t1, c1) in zip(stops, stops[1:], strict=False):
        if t <= t1:
            k = (t - t0) / (t1 - t0)
            r, g, b = (round(a + (b_ - a) * k) for a, b_ in zip(c0, c1, strict=True))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#f0f921"


# Dark blue (near) to yellow (far), precomputed in 64 steps.
_PALETTE = [_ramp(i / 63) for i in range(64)]


def _colour(t: float) -> str:
    return _PALETTE[min(63, max(0, int(t * 63 + 0.5)))]


def heatmap_svg(matrix: Sequence[Sequence[float]] | None, *, title: str = "") -> SafeString:
    """An 8×8 matrix as an SVG heatmap (each cell's value in its tooltip)."""
    if not matrix:
        return mark_safe('<span class="sqal-empty">—</span>')
    values = [v for row in matrix for v in row]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    cell = 14
    parts = [
        f'<svg class="sqal-heatmap" viewBox="0 0 {cell * 8} {cell * 8}" width="{cell * 8}" '
        f'height="{cell * 8}" role="img" aria-label="{escape(title)}">'
    ]
    for y, row in enumerate(matrix):
        for x, value in enumerate(row):
            parts.append(
                f'<rect x="{x * cell}" y="{y * cell}" width="{cell}" height="{cell}" '
                f'fill="{_colour((value - low) / span)}">'
                f"<title>[{y},{x}] {value:.1f}</title></rect>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def spectrum_svg(channels: Sequence[float] | None) -> SafeString:
    """The 10 AS7341 channels (F1…F8, Clear, NIR) as an SVG bar chart."""
    if not channels:
        return mark_safe('<span class="sqal-empty">—</span>')
    width, height, bar = 200, 112, 20
    top = max(channels) or 1.0
    parts = [
        f'<svg class="sqal-spectrum" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="AS7341">'
    ]
    for i, (name, value) in enumerate(zip(SPECTRAL_CHANNELS, channels, strict=False)):
        h = round((value / top) * (height - 14), 1)
        parts.append(
            f'<rect x="{i * bar + 1}" y="{height - 12 - h}" width="{bar - 2}" height="{h}" '
            f'fill="{SPECTRAL_COLOURS[i]}"><title>{name}: {value:.0f}</title></rect>'
            f'<text x="{i * bar + bar / 2}" y="{height - 2}" font-size="7" '
            f'text-anchor="middle">{name.split("_")[0]}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def sample_card(sample: Any) -> dict[str, Any]:
    """What the dashboard shows of a sample (a SensorSample or an ingestion result's reading)."""
    return {
        "device_id": sample.device_id,
        "sample_id": sample.sample_id,
        "time": sample.time,
        "fusion_grade": sample.fusion_grade,
        "fusion_score": sample.fusion_score,
        "is_compliant": sample.is_compliant,
        "lot_code": getattr(sample, "lot_code", ""),
        "site_code": getattr(sample, "site_code", ""),
        "heatmap": heatmap_svg(sample.distance_matrix, title="distance (mm)"),
        "spectrum": spectrum_svg(sample.spectral_channels),
    }


def recent_item(sample: Any) -> dict[str, Any]:
    return {
        "sample_id": sample.sample_id,
        "fusion_grade": sample.fusion_grade,
        "fusion_score": sample.fusion_score,
    }


def render_station(card: dict[str, Any]) -> str:
    return render_to_string("sensors/_station_card.html", {"card": card})


def render_alert(alert: dict[str, Any]) -> str:
    return render_to_string("sensors/_alert_row.html", {"alert": alert})


def dashboard_state(*, since: datetime | None = None) -> dict[str, Any]:
    """The page's first state: unresolved alerts grouped by station (what needs staff now),
    latest sample per station, today's grade counts, the latest open alerts."""
    since = since or timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    cards = []
    for device in Device.objects.filter(is_active=True).order_by("device_id"):
        samples = list(
            SensorSample.objects.filter(device_id=device.device_id)
            .select_related("lot")
            .order_by("-time", "-id")[: RECENT + 1]
        )
        if not samples:
            continue
        sample = samples[0]
        sample.lot_code = sample.lot.code if sample.lot else ""
        card = sample_card(sample)
        card["recent"] = [recent_item(s) for s in samples[1:]]
        cards.append(card)
    counts = dict(
        SensorSample.objects.filter(received_at__gte=since)
        .values_list("fusion_grade")
        .annotate(n=Count("id"))
        .values_list("fusion_grade", "n")
    )
    alerts = [
        alert_item(a)
        for a in QualityAlert.objects.filter(status=QualityAlert.Status.OPEN).select_related(
            "sample", "lot"
        )[:50]
    ]
    groups = alert_groups()
    return {
        "cards": cards,
        "grade_counts": [(g, counts.get(g, 0)) for g in GRADES],
        "alerts": alerts,
        "open_alert_count": QualityAlert.objects.filter(status=QualityAlert.Status.OPEN).count(),
        "alert_groups": groups,
        "stations_needing_staff": sum(1 for g in groups if g["open"]),
    }


def alert_groups(*, limit: int = 500) -> list[dict[str, Any]]:
    """What needs staff now: unresolved alerts (one per station and rule, with its count) grouped
    by station. Stations with an alert nobody acknowledged come first, then the newest."""
    unresolved = (
        QualityAlert.objects.filter(status__in=UNRESOLVED)
        .select_related("lot")
        .order_by("-last_seen_at", "-id")[:limit]
    )
    groups: dict[str, dict[str, Any]] = {}
    for alert in unresolved:
        group = groups.setdefault(
            alert.device_id,
            {
                "device_id": alert.device_id,
                "last_seen_at": alert.last_seen_at,
                "alerts": [],
                "occurrences": 0,
                "open": 0,
                "critical": False,
            },
        )
        alert.lot_code = alert.lot.code if alert.lot else ""
        group["alerts"].append(alert)
        group["occurrences"] += alert.occurrences
        group["open"] += alert.status == QualityAlert.Status.OPEN
        group["critical"] |= alert.severity == "critical"
    return sorted(
        groups.values(),
        key=lambda g: (g["open"] == 0, -g["last_seen_at"].timestamp()),
    )


def needs_state() -> dict[str, Any]:
    """The "what needs you now" section as plain data (for the channel layer): the groups of
    ``alert_groups``, the number of stations needing staff and of open alerts."""
    groups = alert_groups()
    return {
        "groups": [
            dict(
                group,
                last_seen_at=group["last_seen_at"].isoformat(),
                alerts=[
                    {
                        "pk": a.pk,
                        "rule": a.rule,
                        "severity": a.severity,
                        "status": a.status,
                        "occurrences": a.occurrences,
                        "last_seen_at": a.last_seen_at.isoformat(),
                        "lot_code": a.lot.code if a.lot_id and a.lot else "",
                    }
                    for a in group["alerts"]
                ],
            )
            for group in groups
        ],
        "stations_needing_staff": sum(1 for g in groups if g["open"]),
        "open_alert_count": QualityAlert.objects.filter(status=QualityAlert.Status.OPEN).count(),
    }


def render_needs(needs: dict[str, Any], *, can_handle: bool) -> str:
    """The "what needs you now" section (``sensors/_alert_groups.html``) from ``needs_state``
    data. Its forms carry a placeholder CSRF token that the page replaces with its own."""
    groups = [
        dict(
            group,
            last_seen_at=datetime.fromisoformat(group["last_seen_at"]),
            alerts=[
                dict(a, last_seen_at=datetime.fromisoformat(a["last_seen_at"]))
                for a in group["alerts"]
            ],
        )
        for group in needs["groups"]
    ]
    return render_to_string(
        "sensors/_alert_groups.html",
        {
            "alert_groups": groups,
            "stations_needing_staff": needs["stations_needing_staff"],
            "can_handle": can_handle,
            "csrf_token": LIVE_CSRF_PLACEHOLDER,
        },
    )


def alert_item(alert: Any) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "created_at": alert.created_at or timezone.now(),
        "device_id": alert.device_id,
        "sample_pk": alert.sample_id,
        "sample_label": getattr(alert.sample, "sample_id", "") if alert.sample_id else "",
        "lot_code": alert.lot.code if alert.lot_id and alert.lot else "",
        "rule": alert.rule,
        "value": alert.value,
        "severity": alert.severity,
        "message": alert.message,
    }


class LiveFeed:
    """Collects committed samples and sends them to the dashboard group, coalesced."""

    def __init__(self) -> None:
        self._latest: dict[str, Any] = {}
        self._counts: Counter[str] = Counter()
        self._alerts: list[dict[str, Any]] = []
        self._alerts_changed = False
        self._scheduled = False

    def note(self, results: Sequence[Any]) -> None:
        for result in results:
            if result.alerts:
                self._alerts_changed = True  # raised or counted in place: regroup on flush
            if result.status != "saved" or result.reading is None:
                continue
            self._latest.setdefault(result.device_id, deque(maxlen=RECENT + 1)).append(result)
            self._counts[result.fusion_grade] += 1
            for alert in result.alerts[:5]:
                self._alerts.append(
                    {
                        "id": None,
                        "created_at": timezone.now(),
                        "device_id": alert.device_id,
                        "sample_pk": result.pk,
                        "sample_label": result.sample_id,
                        "lot_code": result.lot_code,
                        "rule": alert.rule,
                        "value": alert.value,
                        "severity": alert.severity,
                        "message": alert.message,
                    }
                )
        self._alerts = self._alerts[-20:]
        if (self._latest or self._alerts_changed) and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush_soon)

    def _flush_soon(self) -> None:
        asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        from channels.db import database_sync_to_async
        from channels.layers import get_channel_layer

        self._scheduled = False
        latest, counts, alerts = self._latest, self._counts, self._alerts
        changed, self._alerts_changed = self._alerts_changed, False
        self._latest, self._counts, self._alerts = {}, Counter(), []
        layer = get_channel_layer()
        if layer is None or not _watched(layer):
            return
        needs = None
        if changed:
            # "What needs you now" is read again (one query per flush, not per dashboard) so
            # that counts updated in place and alerts of refused samples show live as well.
            try:
                needs = await database_sync_to_async(needs_state)()
            except Exception:
                logger.exception("live dashboard: alert groups could not be read")
        # Plain data: each dashboard connection renders it (render_update), so a server
        # nobody watches renders nothing.
        stations = []
        for device_id, results in sorted(latest.items()):
            result = results[-1]
            reading = result.reading
            stations.append(
                {
                    "device_id": device_id,
                    "sample_id": result.sample_id,
                    "time": reading.time.isoformat(),
                    "fusion_grade": reading.fusion_grade,
                    "fusion_score": reading.fusion_score,
                    "is_compliant": reading.is_compliant,
                    "lot_code": result.lot_code,
                    "site_code": result.site_code,
                    "distance_matrix": reading.distance_matrix,
                    "spectral_channels": reading.spectral_channels,
                    "recent": [recent_item(r.reading) for r in reversed(list(results)[:-1])],
                }
            )
        for alert in alerts:
            alert["created_at"] = alert["created_at"].isoformat()
        try:
            await layer.group_send(
                GROUP,
                {
                    "type": "live.update",
                    "stations": stations,
                    "grade_counts": dict(counts),
                    "alerts": alerts,
                    "needs": needs,
                },
            )
        except Exception:  # the dashboard is best effort; ingestion must not depend on it
            logger.exception("live dashboard update failed")


def _watched(layer: Any) -> bool:
    """Whether a dashboard may be listening. The in-memory layer (one server process: ``make
    run``, development) knows its group's members, so a server nobody watches reads and sends
    nothing (the alert groups' query cost the ingesting process a few milliseconds per flush);
    with Redis, dashboards connected to other servers may be, so updates are always sent."""
    from channels.layers import InMemoryChannelLayer

    if isinstance(layer, InMemoryChannelLayer):
        return bool(layer.groups.get(GROUP))
    return True


def language_from_scope(scope: dict[str, Any]) -> str:
    """The language a dashboard page was served in (the language cookie, else the browser's
    Accept-Language, as LocaleMiddleware decides for the page), so that its live updates are
    rendered the same way: same words, same number format (0,822 in French, 0.822 in English)."""
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }
    request = SimpleNamespace(
        COOKIES=scope.get("cookies", {}),
        META={"HTTP_ACCEPT_LANGUAGE": headers.get("accept-language", "")},
    )
    return translation.get_language_from_request(request)


@lru_cache(maxsize=256)
def _station_html(language: str, device_id: str, sample_id: str, station_json: str) -> str:
    station = json.loads(station_json)
    card = {
        "device_id": station["device_id"],
        "sample_id": station["sample_id"],
        "time": datetime.fromisoformat(station["time"]),
        "fusion_grade": station["fusion_grade"],
        "fusion_score": station["fusion_score"],
        "is_compliant": station["is_compliant"],
        "lot_code": station["lot_code"],
        "site_code": station["site_code"],
        "heatmap": heatmap_svg(station["distance_matrix"], title="distance (mm)"),
        "spectrum": spectrum_svg(station["spectral_channels"]),
        "recent": station["recent"],
    }
    with translation.override(language):
        return render_station(card)


def render_update(
    event: dict[str, Any], *, language: str | None = None, can_handle: bool = False
) -> str:
    """The frame a dashboard receives: station cards and alert rows as HTML, grade counts, and
    when alerts changed the "what needs you now" section and the open alert count, rendered in
    ``language`` (the dashboard page's; default: the site's), with the alert buttons when the
    viewer may handle alerts (``can_handle``)."""
    language = language or settings.LANGUAGE_CODE
    stations = [
        {
            "device_id": s["device_id"],
            "html": _station_html(
                language, s["device_id"], s["sample_id"], json.dumps(s, sort_keys=True)
            ),
        }
        for s in event["stations"]
    ]
    alerts = []
    with translation.override(language):
        for alert in event["alerts"]:
            alert = dict(alert, created_at=datetime.fromisoformat(alert["created_at"]))
            alerts.append(render_alert(alert))
        needs = event.get("needs")
        frame = {
            "type": "update",
            "stations": stations,
            "grade_counts": event["grade_counts"],
            "alerts": alerts,
        }
        if needs is not None:
            frame["needs_html"] = render_needs(needs, can_handle=can_handle)
            frame["open_alert_count"] = needs["open_alert_count"]
    return json.dumps(frame)


_feeds: dict[int, LiveFeed] = {}


def feed() -> LiveFeed:
    loop = asyncio.get_running_loop()
    found = _feeds.get(id(loop))
    if found is None:
        found = _feeds[id(loop)] = LiveFeed()
    return found
