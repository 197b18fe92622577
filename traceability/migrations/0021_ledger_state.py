"""``ledger_state``: one row holding the latest signed head (with its edge) and the latest
``verify_ledger`` outcome, what every inclusion proof reads besides its leaf and tiles
(``models.LedgerState``), so that a proof's statement opens one small table without an index
instead of two tables and their indexes.

``ledger_refresh_state()`` rewrites the row from ``ledger_heads`` and ``ledger_verifications``;
a statement trigger on each of them calls it after every INSERT, UPDATE, DELETE or TRUNCATE, in
the writing transaction: the row follows whoever writes (the services, admin, a test, an
intruder). Writers of the row take an advisory lock of their own first, and each statement of a
PL/pgSQL function reads a new snapshot (READ COMMITTED), so that the last writer to commit
always wrote what the tables hold once both committed.
"""

from django.db import migrations, models

# pg_advisory_xact_lock key of the state row's writers: the ASCII of "GTLSTATE" as an int8.
STATE_LOCK_KEY = int.from_bytes(b"GTLSTATE", "big", signed=True)

FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION ledger_refresh_state() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({STATE_LOCK_KEY});
    INSERT INTO ledger_state AS s (
        id, head_tree_size, head_root_hash, head_timestamp_ms, head_signature, head_key_id,
        head_edge_hashes, verification_id, verification_failed, verification_findings)
    SELECT 1, h.tree_size, h.root_hash, h.timestamp_ms, h.signature, coalesce(h.key_id, ''),
           h.edge_hashes, v.id, coalesce(NOT v.ok, false), CASE WHEN NOT v.ok THEN v.findings END
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT * FROM ledger_heads ORDER BY tree_size DESC LIMIT 1
    ) AS h ON true
    LEFT JOIN LATERAL (
        SELECT * FROM ledger_verifications ORDER BY started_at DESC, id DESC LIMIT 1
    ) AS v ON true
    ON CONFLICT (id) DO UPDATE SET
        head_tree_size = EXCLUDED.head_tree_size,
        head_root_hash = EXCLUDED.head_root_hash,
        head_timestamp_ms = EXCLUDED.head_timestamp_ms,
        head_signature = EXCLUDED.head_signature,
        head_key_id = EXCLUDED.head_key_id,
        head_edge_hashes = EXCLUDED.head_edge_hashes,
        verification_id = EXCLUDED.verification_id,
        verification_failed = EXCLUDED.verification_failed,
        verification_findings = EXCLUDED.verification_findings;
END
$$;

CREATE OR REPLACE FUNCTION ledger_state_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_refresh_state();
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_heads_state
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ledger_heads
FOR EACH STATEMENT EXECUTE FUNCTION ledger_state_trigger();

CREATE TRIGGER ledger_verifications_state
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ledger_verifications
FOR EACH STATEMENT EXECUTE FUNCTION ledger_state_trigger();

SELECT ledger_refresh_state();
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS ledger_verifications_state ON ledger_verifications;
DROP TRIGGER IF EXISTS ledger_heads_state ON ledger_heads;
DROP FUNCTION IF EXISTS ledger_state_trigger();
DROP FUNCTION IF EXISTS ledger_refresh_state();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("traceability", "0020_scan_client_day"),
    ]

    operations = [
        migrations.CreateModel(
            name="LedgerState",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(
                        default=1, editable=False, primary_key=True, serialize=False
                    ),
                ),
                (
                    "head_tree_size",
                    models.BigIntegerField(editable=False, null=True, verbose_name="tree size"),
                ),
                ("head_root_hash", models.BinaryField(null=True, verbose_name="root hash")),
                (
                    "head_timestamp_ms",
                    models.BigIntegerField(editable=False, null=True, verbose_name="timestamp ms"),
                ),
                ("head_signature", models.BinaryField(null=True, verbose_name="signature")),
                (
                    "head_key_id",
                    models.CharField(
                        blank=True, editable=False, max_length=16, verbose_name="key id"
                    ),
                ),
                ("head_edge_hashes", models.BinaryField(null=True, verbose_name="edge hashes")),
                (
                    "verification_id",
                    models.BigIntegerField(
                        editable=False, null=True, verbose_name="latest verification"
                    ),
                ),
                (
                    "verification_failed",
                    models.BooleanField(
                        default=False, editable=False, verbose_name="latest verification failed"
                    ),
                ),
                (
                    "verification_findings",
                    models.JSONField(
                        editable=False,
                        null=True,
                        verbose_name="findings of the latest verification",
                    ),
                ),
            ],
            options={
                "verbose_name": "ledger state",
                "verbose_name_plural": "ledger state",
                "db_table": "ledger_state",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("id", 1)), name="ledger_state_one_row"
                    )
                ],
            },
        ),
        migrations.RunSQL(sql=FUNCTION_SQL, reverse_sql=REVERSE_SQL),
    ]
