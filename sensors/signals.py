"""What ingestion tells the layers above it, without importing them.

``products_wanted`` is sent, inside the samples' transaction, once per batch of eligible samples
that have no product yet (argument ``requests``: a list of ``ProductRequest``). Traceability
listens (``traceability.tasks``) and enqueues the registrations once the transaction commits, in
one broker message: publishing a Celery task costs the server more than storing a 5 KB sample
(``bench/ingest.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.dispatch import Signal

products_wanted = Signal()


@dataclass(frozen=True)
class ProductRequest:
    """One eligible sample whose consumer product is asked for."""

    lot_id: int
    sample_id: str
    site_code: str | None


def products_registration_request(requests: Sequence[ProductRequest]) -> None:
    """Ask the layer above for these samples' consumer products (see the module docstring)."""
    if requests:
        products_wanted.send(sender=products_registration_request, requests=list(requests))
