"""A random GS1 serial number (AI 21) per product, never derived from the product id.

The GS1 Digital Link resolver used the product id (``FG_<site>_<YYYYMMDD>_<seq4>``, sequential)
as the serial, so stepping it handed out valid signed QR codes. Each product now gets 20
upper-case hexadecimal digits (80 random bits from PostgreSQL's ``gen_random_uuid()``, built in
since PostgreSQL 13, version nibble skipped) as a column default, so every writer — the PL/pgSQL
``register_consumer_product``, bulk history imports, raw SQL — gets one without knowing about it.
Existing rows get theirs when the column is added (a volatile default is evaluated per row).
"""

from django.db import migrations, models

GS1_SERIAL_FUNCTION = """
CREATE OR REPLACE FUNCTION gs1_random_serial() RETURNS varchar
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    -- uuid v4 hex: 32 digits, the 13th is the version (4) and the 17th holds 2 random bits.
    SELECT upper(substr(h, 1, 12) || substr(h, 14, 3) || substr(h, 18, 5))::varchar
    FROM replace(gen_random_uuid()::text, '-', '') AS h
$$;
"""

ADD_COLUMN = """
ALTER TABLE consumer_products
    ADD COLUMN gs1_serial varchar(20) NOT NULL DEFAULT gs1_random_serial();
ALTER TABLE consumer_products
    ADD CONSTRAINT consumer_products_gs1_serial_key UNIQUE (gs1_serial);
ALTER TABLE consumer_products
    ADD CONSTRAINT consumer_products_gs1_serial_format
    CHECK (gs1_serial ~ '^[0-9A-F]{20}$');
"""

DROP_COLUMN = "ALTER TABLE consumer_products DROP COLUMN gs1_serial;"


class Migration(migrations.Migration):
    dependencies = [("traceability", "0004_api_tokens")]

    operations = [
        migrations.RunSQL(
            sql=GS1_SERIAL_FUNCTION, reverse_sql="DROP FUNCTION IF EXISTS gs1_random_serial();"
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(sql=ADD_COLUMN, reverse_sql=DROP_COLUMN)],
            state_operations=[
                migrations.AddField(
                    model_name="consumerproduct",
                    name="gs1_serial",
                    field=models.CharField(
                        db_default=models.Func(
                            function="gs1_random_serial", output_field=models.CharField()
                        ),
                        editable=False,
                        help_text="Random GS1 serial number (AI 21) printed on the label.",
                        max_length=20,
                        unique=True,
                    ),
                ),
            ],
        ),
    ]
