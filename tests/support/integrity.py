"""``manage.py check_integrity`` for tests: every stored aggregate agrees with its raw rows."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command


def assert_integrity(pg=None) -> None:
    """Run check_integrity on the test database, or on a dedicated server's (``pg``)."""
    if pg is not None:
        out = pg.manage("check_integrity")
    else:
        out = StringIO()
        call_command("check_integrity", stdout=out)
        out = out.getvalue()
    assert "Integrity: 0 differences." in out, out
