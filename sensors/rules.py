"""The quality rules PostgreSQL enforces, mirrored once in Python.

PL/pgSQL is the authority: ``gt_fusion_grade`` and ``gt_product_eligible`` (migration
``sensors/0005_grade_rules_sql``) and ``register_consumer_product``, which refuses an ineligible
sample (``traceability/0002``). This module is their one Python mirror, for the code that must
decide before a row reaches the database (message parsing, the demo and history generators,
ingestion's product requests); ``tests/sensors/test_rules.py`` compares both on a grid.
"""

from __future__ import annotations

GRADES = ("A+", "A", "B", "C", "REJECT")
# The stations' cut-offs on the 0–1 fusion score: A+ ≥ 0.85, A ≥ 0.75, B ≥ 0.60, C ≥ 0.45.
GRADE_CUTOFFS: tuple[tuple[float, str], ...] = ((0.85, "A+"), (0.75, "A"), (0.60, "B"), (0.45, "C"))
REJECT = "REJECT"


def grade_for_score(score: float) -> str:
    """The grade the stations give a fusion score (else REJECT)."""
    for cutoff, grade in GRADE_CUTOFFS:
        if score >= cutoff:
            return grade
    return REJECT


def product_eligible(*, is_compliant: bool | None, fusion_grade: str, lot_id: int | None) -> bool:
    """A sample yields a consumer product when it is compliant, not REJECT, and has a lot."""
    return bool(is_compliant) and fusion_grade != REJECT and lot_id is not None
