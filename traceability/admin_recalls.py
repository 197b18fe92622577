"""Admin of recalls and withdrawals: declare (preview, then confirm), close, reach, CSV.

Thin: the work is in ``traceability.recalls``. Recalls are append-only: no change or delete
permission exists for them (``default_permissions``), the admin offers neither, and the
database refuses both (migration ``traceability/0013``). Views and their permissions:
- declare (the add page, two steps): ``traceability.add_recall``;
- close: ``traceability.add_recallclosure``;
- reach and the CSV of affected units: ``traceability.view_recall``.
"""

from __future__ import annotations

import csv
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext

from gaveurs.audit import AuditedAdmin
from gaveurs.models import Lot, Site
from traceability import recalls
from traceability.models import Recall, RecallClosure, RecallKind, RecallScope


class RecallDeclareForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"), choices=RecallKind.choices, widget=forms.RadioSelect
    )
    reference = forms.CharField(
        label=gettext_lazy("Reference"), max_length=64, help_text=gettext_lazy("e.g. RC-2026-014")
    )
    reason = forms.CharField(label=gettext_lazy("Reason"), widget=forms.Textarea(attrs={"rows": 2}))
    instructions_fr = forms.CharField(
        label=gettext_lazy("Instructions for consumers (French)"),
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    instructions_en = forms.CharField(
        label=gettext_lazy("Instructions for consumers (English)"),
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    starts_at = forms.DateTimeField(
        label=gettext_lazy("Starts at"),
        help_text=gettext_lazy("Consumers see it from this time (YYYY-MM-DD HH:MM, local time)."),
    )
    scope = forms.ChoiceField(
        label=gettext_lazy("Scope"), choices=RecallScope.choices, widget=forms.RadioSelect
    )
    lots = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Lots"),
        queryset=Lot.objects.order_by("-id"),
        required=False,
        help_text=gettext_lazy("Scope: lots."),
    )
    site = forms.ModelChoiceField(
        label=gettext_lazy("Site"),
        queryset=Site.objects.order_by("code"),
        required=False,
        help_text=gettext_lazy("Scope: site."),
    )
    produced_from = forms.DateField(
        label=gettext_lazy("Produced from"),
        required=False,
        help_text=gettext_lazy("Scope: first production day."),
    )
    produced_until = forms.DateField(
        label=gettext_lazy("Produced until"),
        required=False,
        help_text=gettext_lazy("Scope: last production day."),
    )
    product_ids = forms.CharField(
        label=gettext_lazy("Product ids"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy(
            "Scope: product ids (FG_…), one per line or separated by spaces or commas."
        ),
    )

    def scope_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "scope": data["scope"],
            "lot_ids": [lot.pk for lot in data.get("lots") or []],
            "site": data.get("site"),
            "produced_from": data.get("produced_from"),
            "produced_until": data.get("produced_until"),
            "product_ids": (data.get("product_ids") or "").replace(",", " ").split(),
        }


class RecallStatusFilter(admin.SimpleListFilter):
    """Active (not closed) or closed: the admin home links to the active ones."""

    title = gettext_lazy("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", _("Active (not closed)")), ("closed", _("Closed"))]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "active":
            return queryset.filter(closure__isnull=True)
        if self.value() == "closed":
            return queryset.filter(closure__isnull=False)
        return queryset


class RecallCloseForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason for closing"), widget=forms.Textarea(attrs={"rows": 3})
    )


@admin.register(Recall)
class RecallAdmin(AuditedAdmin):
    list_display = ["reference", "kind", "scope", "starts_at", "declared_at", "status", "links"]
    list_filter = [RecallStatusFilter, "kind", "scope"]
    search_fields = ["reference", "reason"]
    readonly_fields = [
        "reference",
        "kind",
        "reason",
        "instructions_fr",
        "instructions_en",
        "starts_at",
        "scope",
        "scope_summary",
        "declared_at",
        "declared_by",
        "status",
        "links",
    ]
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("closure", "site", "declared_by")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # append-only: declared once, closed by a new record

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("status"))
    def status(self, obj: Recall) -> str:
        closure = getattr(obj, "closure", None)
        if closure is None:
            if obj.starts_at <= timezone.now():
                return pgettext("recall status", "active")
            return pgettext("recall status", "scheduled")
        return _("closed %(when)s: %(reason)s") % {
            "when": f"{closure.closed_at:%Y-%m-%d %H:%M}",
            "reason": closure.reason,
        }

    @admin.display(description=gettext_lazy("scope"))
    def scope_summary(self, obj: Recall) -> str:
        if obj.scope == RecallScope.SITE_DATES:
            return _("site %(site)s from %(first)s to %(last)s") % {
                "site": obj.site,
                "first": obj.produced_from,
                "last": obj.produced_until,
            }
        if obj.scope == RecallScope.LOTS:
            codes = ", ".join(r.lot.code for r in obj.scope_lots.select_related("lot"))
            return _("lots %(codes)s") % {"codes": codes}
        count = obj.scope_products.count()
        return ngettext("%(n)d listed product", "%(n)d listed products", count) % {"n": count}

    @admin.display(description=gettext_lazy("reach"))
    def links(self, obj: Recall) -> str:
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a>',
            reverse("admin:traceability_recall_reach", args=[obj.pk]),
            _("reach"),
            reverse("admin:traceability_recall_units_csv", args=[obj.pk]),
            _("CSV of units"),
        )

    @admin.display(description=gettext_lazy("reach"))
    def links_and_close(self, obj: Recall) -> str:
        if getattr(obj, "closure", None) is not None:
            return self.links(obj)
        url = reverse("admin:traceability_recall_close", args=[obj.pk])
        return format_html('{} · <a href="{}">{}</a>', self.links(obj), url, _("close"))

    def _with_close(self, request: HttpRequest, names: Any) -> list[str]:
        """The close link only for those who may close."""
        if not request.user.has_perm("traceability.add_recallclosure"):
            return list(names)
        return ["links_and_close" if n == "links" else n for n in names]

    def get_list_display(self, request: HttpRequest) -> list[str]:
        return self._with_close(request, super().get_list_display(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self._with_close(request, super().get_readonly_fields(request, obj))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self._with_close(request, super().get_fields(request, obj))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/close/", view(self.close_view), name="traceability_recall_close"),
            path("<int:pk>/reach/", view(self.reach_view), name="traceability_recall_reach"),
            path(
                "<int:pk>/units.csv",
                view(self.units_csv_view),
                name="traceability_recall_units_csv",
            ),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            **extra,
        }

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None):
        """Two steps: the form posts for a preview (units and lots reached); the preview page
        posts the same data with ``confirm`` to declare."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial = {"starts_at": timezone.localtime().strftime("%Y-%m-%d %H:%M")}
        form = RecallDeclareForm(request.POST or None, initial=initial)
        preview = None
        if request.method == "POST" and form.is_valid():
            scope = form.scope_arguments()
            if request.POST.get("confirm") == "1":
                try:
                    recall = recalls.recall_declare(
                        kind=form.cleaned_data["kind"],
                        reference=form.cleaned_data["reference"],
                        reason=form.cleaned_data["reason"],
                        instructions_fr=form.cleaned_data["instructions_fr"],
                        instructions_en=form.cleaned_data["instructions_en"],
                        starts_at=form.cleaned_data["starts_at"],
                        declared_by=request.user,
                        **scope,
                    )
                except recalls.RecallError as exc:
                    form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
                else:
                    messages.success(
                        request,
                        _("Recall %(reference)s declared and sealed.")
                        % {"reference": recall.reference},
                    )
                    return HttpResponseRedirect(
                        reverse("admin:traceability_recall_change", args=[recall.pk])
                    )
            else:
                products = scope.pop("product_ids")
                units = recalls.recall_scope_products(
                    **scope,
                    product_pks=recalls.product_pks(products),
                )
                preview = recalls.recall_preview(units)
        context = self._context(
            request, _("Declare a recall or withdrawal"), form=form, preview=preview
        )
        return TemplateResponse(request, "traceability/admin/recall_declare.html", context)

    def close_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        recall = get_object_or_404(Recall.objects.select_related("closure"), pk=pk)
        if not request.user.has_perm("traceability.add_recallclosure"):
            raise PermissionDenied
        form = RecallCloseForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                recalls.recall_close(
                    recall=recall, reason=form.cleaned_data["reason"], closed_by=request.user
                )
            except recalls.RecallError as exc:
                form.add_error(None, exc.detail)
            else:
                messages.success(
                    request,
                    _("Recall %(reference)s closed and sealed.") % {"reference": recall.reference},
                )
                return HttpResponseRedirect(
                    reverse("admin:traceability_recall_change", args=[recall.pk])
                )
        context = self._context(
            request,
            _("Close recall %(reference)s") % {"reference": recall.reference},
            form=form,
            original=recall,
        )
        return TemplateResponse(request, "traceability/admin/recall_close.html", context)

    def _viewable(self, request: HttpRequest, pk: int) -> Recall:
        recall = get_object_or_404(Recall.objects.select_related("closure", "site"), pk=pk)
        if not request.user.has_perm("traceability.view_recall"):
            raise PermissionDenied
        return recall

    def reach_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        recall = self._viewable(request, pk)
        context = self._context(
            request,
            _("Reach of recall %(reference)s") % {"reference": recall.reference},
            original=recall,
            reach=recalls.recall_reach(recall),
        )
        return TemplateResponse(request, "traceability/admin/recall_reach.html", context)

    def units_csv_view(self, request: HttpRequest, pk: int) -> StreamingHttpResponse:
        recall = self._viewable(request, pk)

        class Echo:
            def write(self, value: str) -> str:
                return value

        writer = csv.writer(Echo())
        rows = (writer.writerow(row) for row in recalls.recall_units_csv(recall))
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="recall-{recall.reference}-units.csv"'
        )
        return response


@admin.register(RecallClosure)
class RecallClosureAdmin(AuditedAdmin):
    list_display = ["recall", "closed_at", "closed_by", "reason"]
    readonly_fields = ["recall", "reason", "closed_at", "closed_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # closed from the recall's page (admin:traceability_recall_close)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
