"""django-ninja router of the sensors app."""

from __future__ import annotations

from ninja import Router

router = Router(tags=["sensors"])
