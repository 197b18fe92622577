"""PL/pgSQL: the grade of a fusion score and the product eligibility of a sample.

The authority for both rules; ``sensors/rules.py`` is their Python mirror (tested against these
functions on a grid). ``products_pending_registration`` selects with ``gt_product_eligible``.
"""

from django.db import migrations

FUNCTIONS_SQL = r"""
CREATE OR REPLACE FUNCTION gt_fusion_grade(p_score double precision) RETURNS varchar
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
        WHEN p_score >= 0.85 THEN 'A+'
        WHEN p_score >= 0.75 THEN 'A'
        WHEN p_score >= 0.60 THEN 'B'
        WHEN p_score >= 0.45 THEN 'C'
        ELSE 'REJECT'
    END::varchar;
$$;

CREATE OR REPLACE FUNCTION gt_product_eligible(
    p_is_compliant boolean, p_fusion_grade varchar, p_lot_id bigint
) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_is_compliant, false)
        AND p_fusion_grade IS DISTINCT FROM 'REJECT'
        AND p_lot_id IS NOT NULL;
$$;
"""

REVERSE_SQL = """
DROP FUNCTION IF EXISTS gt_product_eligible(boolean, varchar, bigint);
DROP FUNCTION IF EXISTS gt_fusion_grade(double precision);
"""


class Migration(migrations.Migration):
    dependencies = [("sensors", "0004_payload_zstd_bytea")]

    operations = [migrations.RunSQL(sql=FUNCTIONS_SQL, reverse_sql=REVERSE_SQL)]
