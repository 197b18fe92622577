"""Site GTIN and GLN are validated (format and GS1 check digit) by the model and by PostgreSQL.

The admin saved a GTIN with a wrong check digit ("changed successfully") and labels of that site
silently lost their GS1 line. The constraints are added NOT VALID: they hold for every new or
changed row without refusing to migrate a database that already holds a bad value (staff fix it
in the admin, which now says what is wrong).
"""

from django.db import migrations, models

import gaveurs.gs1

CHECK_FUNCTION = """
CREATE OR REPLACE FUNCTION gs1_key_is_valid(p_key text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT p_key ~ '^[0-9]+$' AND (
        SELECT (10 - sum(substr(reverse(left(p_key, -1)), i, 1)::int
                         * CASE WHEN i % 2 = 1 THEN 3 ELSE 1 END) % 10) % 10
        FROM generate_series(1, length(p_key) - 1) AS i
    ) = right(p_key, 1)::int
$$;
ALTER TABLE gaveurs_site ADD CONSTRAINT gaveurs_site_gtin_valid CHECK (
    gtin = '' OR (length(gtin) IN (8, 12, 13, 14) AND gs1_key_is_valid(gtin))
) NOT VALID;
ALTER TABLE gaveurs_site ADD CONSTRAINT gaveurs_site_gln_valid CHECK (
    gln = '' OR (length(gln) = 13 AND gs1_key_is_valid(gln))
) NOT VALID;
"""

DROP = """
ALTER TABLE gaveurs_site DROP CONSTRAINT IF EXISTS gaveurs_site_gtin_valid;
ALTER TABLE gaveurs_site DROP CONSTRAINT IF EXISTS gaveurs_site_gln_valid;
DROP FUNCTION IF EXISTS gs1_key_is_valid(text);
"""


class Migration(migrations.Migration):
    dependencies = [("gaveurs", "0003_site_gln")]

    operations = [
        migrations.AlterField(
            model_name="site",
            name="gtin",
            field=models.CharField(
                blank=True,
                help_text="GS1 trade item number of the product (8, 12, 13 or 14 digits, checked).",
                max_length=14,
                validators=[gaveurs.gs1.validate_gtin],
                verbose_name="GTIN",
            ),
        ),
        migrations.AlterField(
            model_name="site",
            name="gln",
            field=models.CharField(
                blank=True,
                help_text="GS1 Global Location Number (13 digits, checked).",
                max_length=13,
                validators=[gaveurs.gs1.validate_gln],
                verbose_name="GLN",
            ),
        ),
        migrations.RunSQL(sql=CHECK_FUNCTION, reverse_sql=DROP),
    ]
