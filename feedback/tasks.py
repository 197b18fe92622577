"""Celery tasks of the feedback app (queue "default"). Thin: take ids, call ``feedback.pages``.

``scan_pages_render_leaves`` renders and stores the consumer pages of the products a newly
signed tree head sealed (``traceability.signals.head_signed``), so that a unit's first scan
reads its page instead of rendering it. Idempotent (a page is stored per product and language,
replaced when rendered again); a page it could not store is rendered by its first scan instead.

``product_registered_receiver`` does the same, in the registration task's process, for a
product just registered, before a signed head covers it or (when its own append signed one)
before the head's task gets to it; ``scan_pages_render_unit_task`` for a unit just reviewed
(its page without the form), enqueued by ``feedback.services.feedback_submit``
(``feedback.pages.scan_pages_render_unit``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from feedback.pages import scan_pages_render, scan_pages_render_unit

logger = logging.getLogger(__name__)

RENDER_TASK = "feedback.tasks.scan_pages_render_leaves"
RENDER_UNIT_TASK = "feedback.tasks.scan_pages_render_unit_task"
# Products per task: a head signed over a bulk import covers thousands.
CHUNK = 500


@shared_task(name=RENDER_TASK, acks_late=True, ignore_result=True)
def scan_pages_render_leaves(first_leaf: int, end_leaf: int) -> int:
    """Store the pages of the products sealed at leaves ``first_leaf`` to ``end_leaf - 1``."""
    from traceability.models import LedgerLeaf

    product_pks = list(
        LedgerLeaf.objects.filter(
            leaf_index__gte=first_leaf, leaf_index__lt=end_leaf, product__isnull=False
        )
        .order_by("leaf_index")
        .values_list("product_id", flat=True)
    )
    return scan_pages_render(product_pks=product_pks)


def head_signed_receiver(sender: Any, *, previous_size: int, tree_size: int, **kwargs: Any) -> None:
    """Connected to ``traceability.signals.head_signed`` by ``FeedbackConfig.ready``: enqueue
    the rendering of the newly sealed products' pages. A broker that cannot be reached costs
    nothing but the head start (the first scans render those pages), so it is logged, not
    raised into the request or task that signed the head."""
    for first in range(previous_size, tree_size, CHUNK):
        try:
            scan_pages_render_leaves.delay(first, min(first + CHUNK, tree_size))
        except Exception:  # noqa: BLE001 (any broker failure)
            logger.warning("Could not enqueue the scan pages of leaves %s-%s", first, tree_size)
            return


def product_registered_receiver(sender: Any, *, qr_code: str, **kwargs: Any) -> None:
    """Connected to ``traceability.signals.product_registered`` by ``FeedbackConfig.ready``:
    store the page of a unit just registered, in the registration task (rendering it there costs
    less than a task of its own). The product is committed whatever happens here: a failure
    costs only the head start (its first scans render the page), so it is logged, not raised
    into the registration, which would be retried for nothing."""
    try:
        scan_pages_render_unit(qr_code=qr_code)
    except Exception:  # noqa: BLE001 (the registration stands; the scans render the page)
        logger.exception("Could not store the page of %s before its head", qr_code)


@shared_task(name=RENDER_UNIT_TASK, acks_late=True, ignore_result=True)
def scan_pages_render_unit_task(qr_code: str) -> int:
    """Store the current pages of one unit (after its review)."""
    return scan_pages_render_unit(qr_code=qr_code)


def scan_pages_render_unit_later(*, qr_code: str) -> None:
    """Enqueue ``scan_pages_render_unit_task`` (call it on commit). A broker that cannot be
    reached costs only the head start (the unit's scans render its page), so it is logged,
    not raised into the review that was just stored."""
    try:
        scan_pages_render_unit_task.delay(qr_code)
    except Exception:  # noqa: BLE001 (any broker failure)
        logger.warning("Could not enqueue the scan pages of %s", qr_code)
