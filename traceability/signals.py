"""What traceability tells the layers above it, without importing them.

``head_signed`` is sent once the transaction that signed a tree head commits (arguments
``previous_size``, ``tree_size``): the leaves ``previous_size`` to ``tree_size - 1`` are now
covered by a signed head, so their inclusion proofs are final. The consumer pages (feedback)
listen and render those products' pages ahead of their scans.

``product_registered`` is sent by the live registration task once a product it registered
and appended to the log is committed (argument ``qr_code``): the consumer pages render its
page now (saying that it is being sealed while no signed head covers it), so that its first
scans need not.
"""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

head_signed = Signal()
product_registered = Signal()


def head_signed_on_commit(*, previous_size: int, tree_size: int) -> None:
    """Send ``head_signed`` when the current transaction commits."""
    transaction.on_commit(
        lambda: head_signed.send(
            sender=head_signed_on_commit, previous_size=previous_size, tree_size=tree_size
        )
    )
