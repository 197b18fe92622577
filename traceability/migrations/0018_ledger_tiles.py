r"""``ledger_tiles``: the proof nodes of four levels in one row (``models.LedgerTile``), written
from ``ledger_nodes`` by ``ledger_write_tiles`` when a head is signed, and backfilled here up to
the latest head.

``ledger_write_tiles(p_from, p_to)`` (re)writes every tile that holds a node completed by the
leaves [p_from, p_to): tier t, tile k (key ``t << 56 | k``) holds levels 4t..4t+3 under node
(4t+4, k), level 4t+j at byte 32 * (OFFSET[j] + i - (k << (4 - j))) for node i, OFFSET = 0,
16, 24, 28 (30 hashes, 960 bytes), 32 zero bytes where a node is not stored. Plain storage: a tile is never
compressed or moved out of line (hashes do not compress; one tile is one heap tuple read).
"""

from django.db import migrations, models

FUNCTION_SQL = r"""
ALTER TABLE ledger_tiles ALTER COLUMN hashes SET STORAGE PLAIN;

CREATE OR REPLACE FUNCTION ledger_write_tiles(p_from bigint, p_to bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO ledger_tiles (tile, hashes)
    SELECT (k.tier::bigint << 56) | k.idx,
           string_agg(
               -- a scalar subquery, one primary-key probe a slot: as a join, the planner
               -- hashed the whole ledger_nodes table at every head
               coalesce(
                   (SELECT n.hash FROM ledger_nodes n
                    WHERE n.level = 4 * k.tier + s.j AND n.idx = (k.idx << (4 - s.j)) + s.p),
                   decode(repeat('00', 32), 'hex')
               ),
               ''::bytea ORDER BY s.j, s.p
           )
    FROM (
        SELECT g.t AS tier, x.idx
        FROM generate_series(0, 14) AS g(t)
        CROSS JOIN LATERAL generate_series(
            p_from >> (4 * g.t + 4), (p_to - 1) >> (4 * g.t + 4)
        ) AS x(idx)
        WHERE p_to > p_from AND (g.t = 0 OR ((p_to - 1) >> (4 * g.t)) > 0)
    ) AS k
    CROSS JOIN LATERAL (
        SELECT j.j, p.p
        FROM generate_series(0, 3) AS j(j)
        CROSS JOIN LATERAL generate_series(0, (16 >> j.j) - 1) AS p(p)
    ) AS s
    GROUP BY k.tier, k.idx
    ON CONFLICT (tile) DO UPDATE SET hashes = EXCLUDED.hashes
$$;

SELECT ledger_write_tiles(0, coalesce((SELECT max(tree_size) FROM ledger_heads), 0));
"""

REVERSE_SQL = "DROP FUNCTION IF EXISTS ledger_write_tiles(bigint, bigint);"


class Migration(migrations.Migration):
    dependencies = [
        ("traceability", "0017_verbose_names"),
    ]

    operations = [
        migrations.CreateModel(
            name="LedgerTile",
            fields=[
                (
                    "tile",
                    models.BigIntegerField(primary_key=True, serialize=False, verbose_name="tile"),
                ),
                ("hashes", models.BinaryField(max_length=960, verbose_name="hashes")),
            ],
            options={
                "db_table": "ledger_tiles",
                "verbose_name": "ledger tile",
                "verbose_name_plural": "ledger tiles",
            },
        ),
        migrations.RunSQL(sql=FUNCTION_SQL, reverse_sql=REVERSE_SQL),
    ]
