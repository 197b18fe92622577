"""``ledger_heads.edge_hashes``: the nodes every inclusion proof under a head ends with
(``traceability.ledger.merkle.head_edge``), written when the head is signed; filled here for the
latest head (older heads are not served: their proofs read ``ledger_nodes``). And an index on
``ledger_verifications.started_at``: every cold proof and scan reads the latest run."""

from django.db import migrations, models


def fill_latest_edge(apps, schema_editor) -> None:
    from traceability.ledger.merkle import frontier_keys, head_edge

    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT max(tree_size) FROM ledger_heads")
        (size,) = cursor.fetchone()
        if not size:
            return
        keys = frontier_keys(size)
        cursor.execute(
            "SELECT n.level, n.idx, n.hash FROM ledger_nodes n "
            "JOIN unnest(%s::smallint[], %s::bigint[]) AS k(level, idx) "
            "ON n.level = k.level AND n.idx = k.idx",
            [[lvl for lvl, _ in keys], [idx for _, idx in keys]],
        )
        found = {(lvl, idx): bytes(h) for lvl, idx, h in cursor.fetchall()}
        if any(k not in found for k in keys):
            return  # nodes missing: verify_ledger reports it; proofs read ledger_nodes
        cursor.execute(
            "UPDATE ledger_heads SET edge_hashes = %s WHERE tree_size = %s",
            [head_edge([found[k] for k in keys]), size],
        )


class Migration(migrations.Migration):
    dependencies = [
        ("traceability", "0018_ledger_tiles"),
    ]

    operations = [
        migrations.AddField(
            model_name="ledgerhead",
            name="edge_hashes",
            field=models.BinaryField(
                help_text="The head's frontier nodes and their folds, which end every proof "
                "under it.",
                null=True,
                verbose_name="edge hashes",
            ),
        ),
        migrations.RunPython(fill_latest_edge, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="ledgerverification",
            index=models.Index(fields=["started_at"], name="ledger_verifications_started"),
        ),
    ]
