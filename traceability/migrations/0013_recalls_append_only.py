"""Recalls are append-only: a trigger refuses UPDATE and DELETE on the recall tables (their
scope rows and closings included). Closing a recall is a new ``recall_closures`` row.

TRUNCATE is left alone: it is not a row change an application makes, and the test runner
empties tables with it.
"""

from django.db import migrations

TABLES = ["recalls", "recall_lots", "recall_products", "recall_closures"]

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION gt_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'Recalls are never edited or deleted; close a recall with a new closing.';
END
$$;
"""

TRIGGERS_SQL = "".join(
    f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
    "FOR EACH ROW EXECUTE FUNCTION gt_append_only();\n"
    for t in TABLES
)
DROP_SQL = "".join(f"DROP TRIGGER IF EXISTS {t}_append_only ON {t};\n" for t in TABLES) + (
    "DROP FUNCTION IF EXISTS gt_append_only();"
)


class Migration(migrations.Migration):
    dependencies = [("traceability", "0012_ledger_entry_kinds_and_recalls")]

    operations = [migrations.RunSQL(sql=FUNCTION_SQL + TRIGGERS_SQL, reverse_sql=DROP_SQL)]
