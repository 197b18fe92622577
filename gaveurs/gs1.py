"""GS1 keys of the producer domain: the mod-10 check digit, GTIN and GLN validation.

The one implementation of the GS1 check digit (GS1 General Specifications 7.9.1); the resolver,
labels and EPCIS identifiers in traceability use it too.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

GTIN_LENGTHS = (8, 12, 13, 14)


def gs1_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit of ``body`` (every digit of the key but the last)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin_problem(value: str) -> str | None:
    """What is wrong with a GTIN-8/12/13/14, or None when it is well formed and checked."""
    if not value.isascii() or not value.isdigit() or len(value) not in GTIN_LENGTHS:
        return "A GTIN is 8, 12, 13 or 14 digits."
    expected = gs1_check_digit(value[:-1])
    if expected != int(value[-1]):
        return f"The GTIN's check digit is wrong: {value[:-1]}{expected} would be valid."
    return None


def gln_problem(value: str) -> str | None:
    """What is wrong with a GLN (13 digits, GS1 check digit), or None."""
    if not value.isascii() or not value.isdigit() or len(value) != 13:
        return "A GLN is 13 digits."
    expected = gs1_check_digit(value[:-1])
    if expected != int(value[-1]):
        return f"The GLN's check digit is wrong: {value[:-1]}{expected} would be valid."
    return None


def validate_gtin(value: str) -> None:
    problem = gtin_problem(value)
    if problem:
        raise ValidationError(problem, code="gtin")


def validate_gln(value: str) -> None:
    problem = gln_problem(value)
    if problem:
        raise ValidationError(problem, code="gln")
