"""The admin home's "what needs me now" panel: what is waiting for staff, by role.

``attention_items(user=...)`` lists the entries the user may see (the view or change permission
of the model behind each), each with a count and a link to the admin list filtered to exactly
those rows. One query per entry at most, whatever the data: the panel's cost is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from optimizer.models import OptimizedCurve
from sensors.alerts import unresolved_no_lot_alerts
from sensors.models import Device, QualityAlert, QualityThreshold
from traceability.models import ForgedScanAttempt, LedgerVerification, Recall, ScanAlert

RECENT_DAYS = 7


@dataclass(frozen=True)
class AttentionItem:
    label: str
    count: int | None  # None: not a count (the ledger verification)
    url: str
    level: str  # "critical", "warning" or "ok": how the entry is shown
    detail: str = ""


def _can_see(user, model) -> bool:
    opts = model._meta
    return user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or user.has_perm(
        f"{opts.app_label}.change_{opts.model_name}"
    )


def _changelist(model, **filters: str) -> str:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _level(count: int, when_some: str = "warning") -> str:
    return when_some if count else "ok"


def _recent_window() -> tuple[datetime, datetime]:
    """The admin date filter's "Past 7 days" (local midnight 7 days ago to tomorrow), so the
    count and the list it links to are the same rows."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=RECENT_DAYS), today + timedelta(days=1)


def _alerts(user) -> list[AttentionItem]:
    if not _can_see(user, QualityAlert):
        return []
    counts = dict(
        QualityAlert.objects.filter(status=QualityAlert.Status.OPEN)
        .values_list("severity")
        .annotate(n=Count("id"))
        .values_list("severity", "n")
    )
    return [
        AttentionItem(
            label=_("Open quality alerts: %(severity)s") % {"severity": str(label).lower()},
            count=counts.get(severity, 0),
            url=_changelist(QualityAlert, status__exact="open", severity__exact=severity),
            level=_level(counts.get(severity, 0), severity),
        )
        for severity, label in QualityThreshold.Severity.choices[::-1]  # critical first
    ]


def _recent(user, model, field: str, label: str) -> list[AttentionItem]:
    if not _can_see(user, model):
        return []
    since, until = _recent_window()
    count = model.objects.filter(**{f"{field}__gte": since, f"{field}__lt": until}).count()
    url = _changelist(model, **{f"{field}__gte": str(since), f"{field}__lt": str(until)})
    return [AttentionItem(label=label, count=count, url=url, level=_level(count))]


def _stations_without_lot(user) -> list[AttentionItem]:
    if not _can_see(user, Device):
        return []
    count = Device.objects.filter(
        device_id__in=unresolved_no_lot_alerts().values("device_id")
    ).count()
    return [
        AttentionItem(
            label=_("Stations sending without a lot"),
            count=count,
            url=_changelist(Device, without_lot="yes"),
            level=_level(count),
        )
    ]


def _ledger(user) -> list[AttentionItem]:
    if not _can_see(user, LedgerVerification):
        return []
    last = LedgerVerification.objects.order_by("-started_at").first()
    if last is None:
        return [
            AttentionItem(
                label=_("Last ledger verification"),
                count=None,
                url=_changelist(LedgerVerification),
                level="warning",
                detail=_("never run (manage.py verify_ledger)"),
            )
        ]
    when = timezone.localtime(last.started_at).strftime("%Y-%m-%d %H:%M")
    if last.ok:
        detail = _("%(when)s: OK, %(products)d products, %(heads)d heads") % {
            "when": when,
            "products": last.products_checked,
            "heads": last.heads_checked,
        }
        return [
            AttentionItem(
                label=_("Last ledger verification"),
                count=None,
                url=_changelist(LedgerVerification),
                level="ok",
                detail=detail,
            )
        ]
    findings = len(last.findings or [])
    return [
        AttentionItem(
            label=_("Last ledger verification"),
            count=findings,
            url=_changelist(LedgerVerification, ok__exact="0"),
            level="critical",
            detail=(
                ngettext(
                    "%(when)s: %(findings)d finding.", "%(when)s: %(findings)d findings.", findings
                )
                % {"when": when, "findings": findings}
                + f" {last.summary}"
            )[:300],
        )
    ]


def _curves(user) -> list[AttentionItem]:
    if not _can_see(user, OptimizedCurve):
        return []
    count = OptimizedCurve.objects.filter(status=OptimizedCurve.Status.PROPOSED).count()
    return [
        AttentionItem(
            label=_("Optimised curves awaiting approval"),
            count=count,
            url=_changelist(OptimizedCurve, status__exact="proposed"),
            level=_level(count),
        )
    ]


def active_recalls_item(user) -> list[AttentionItem]:
    """Recalls and withdrawals not closed (consumers holding their units see the notice)."""
    if not _can_see(user, Recall):
        return []
    count = Recall.objects.filter(closure__isnull=True).count()
    return [
        AttentionItem(
            label=_("Active recalls and withdrawals"),
            count=count,
            url=_changelist(Recall, status="active"),
            level=_level(count, "critical"),
        )
    ]


def attention_items(*, user) -> list[AttentionItem]:
    """The entries of the admin home's panel that ``user`` may see, most urgent kinds first."""
    return [
        *active_recalls_item(user),
        *_alerts(user),
        *_stations_without_lot(user),
        *_recent(
            user,
            ScanAlert,
            "raised_at",
            _("Copied-label alerts, last %(days)d days") % {"days": RECENT_DAYS},
        ),
        *_recent(
            user,
            ForgedScanAttempt,
            "attempted_at",
            _("Forged-code attempts, last %(days)d days") % {"days": RECENT_DAYS},
        ),
        *_ledger(user),
        *_curves(user),
    ]
