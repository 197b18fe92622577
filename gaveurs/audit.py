"""The audit trail's admin: every model with ``HistoricalRecords`` uses ``AuditedAdmin``.

Staff read an object's history (who, when, what changed, before and after) from its "History"
page. The record cannot be edited or reverted: django-simple-history hides the revert button
when SIMPLE_HISTORY_REVERT_DISABLED is set, but its historical version page still saved a
crafted POST; here that page is read-only whatever is posted. Historical rows have no admin
of their own, so nobody edits or deletes them from the admin.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin


class AuditedAdmin(SimpleHistoryAdmin):
    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if request.method != "GET":
            raise PermissionDenied("the audit trail is read-only")
        return super().history_form_view(request, object_id, version_id, extra_context)
