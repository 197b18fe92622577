"""What ingestion tells the layers above it, without importing them.

``product_wanted`` is sent, inside the sample's transaction, for each eligible sample that has
no product yet (arguments ``lot_id``, ``sample_id``, ``site_code``). Traceability listens
(``traceability.tasks``) and enqueues the registration once the transaction commits.
"""

from __future__ import annotations

from django.dispatch import Signal

product_wanted = Signal()


def product_registration_request(*, lot_id: int, sample_id: str, site_code: str | None) -> None:
    """Ask the layer above for this sample's consumer product (see the module docstring)."""
    product_wanted.send(
        sender=product_registration_request, lot_id=lot_id, sample_id=sample_id, site_code=site_code
    )
