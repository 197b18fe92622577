"""django-ninja router of the feedback app (consumer feedback)."""

from __future__ import annotations

from ninja import Router

router = Router(tags=["consumer"])
