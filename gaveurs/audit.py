"""The audit trail's admin: every model with ``HistoricalRecords`` uses ``AuditedAdmin``.

Staff read an object's history (who, when, what changed, before and after) from its "History"
page. The record cannot be edited or reverted: django-simple-history hides the revert button
when SIMPLE_HISTORY_REVERT_DISABLED is set, but its historical version page still saved a
crafted POST; here that page is read-only whatever is posted. Historical rows have no admin
of their own, so nobody edits or deletes them from the admin.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin


class AuditedAdmin(SimpleHistoryAdmin):
    def _check_object_id(self, object_id: str) -> None:
        """django-simple-history looks the id up as given: a malformed one made a 500."""
        try:
            self.model._meta.pk.to_python(unquote(object_id))
        except (ValueError, ValidationError) as exc:
            raise Http404("no such object") from exc

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        self._check_object_id(object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if request.method != "GET":
            raise PermissionDenied("the audit trail is read-only")
        self._check_object_id(object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)
