"""Optimised feeding curves proposed by `manage.py optimize_curves` (see the optimizer issue)."""

from __future__ import annotations
