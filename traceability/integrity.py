"""Stored aggregates of traceability, recomputed from raw rows (``manage.py check_integrity``).

Each check returns one line per difference; an empty list means the stored figures are true.
"""

from __future__ import annotations

from django.db import connection

LIMIT = 50

# Every product is sealed (a product without a leaf, or a product leaf count that differs).
LEDGER_SQL = """
SELECT (SELECT count(*) FROM consumer_products),
       (SELECT count(*) FROM ledger_leaves WHERE kind = 'product'),
       ARRAY(SELECT p.product_id FROM consumer_products p
             WHERE NOT EXISTS (SELECT 1 FROM ledger_leaves l WHERE l.product_pk = p.id)
             ORDER BY p.id LIMIT %s)
"""


def ledger_differences() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(LEDGER_SQL, [LIMIT])
        products, leaves, unsealed = cursor.fetchone()
    found = []
    if products != leaves:
        found.append(f"ledger: {leaves} leaves for {products} products")
    found.extend(f"ledger: product {pid} has no leaf" for pid in unsealed)
    return found
