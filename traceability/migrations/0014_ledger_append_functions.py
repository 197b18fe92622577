r"""PL/pgSQL ``ledger_append_leaf``: one leaf appended in one round trip, and
``ledger_append_product``: a product's canonical record built in SQL and appended, so that
sealing a product is one call, with no read of the product row into Python first.

The append used to be four statements from Python (advisory lock, the log's state and frontier,
the leaf and node inserts, the product's hash); here it is one call. It takes the same
transaction-scoped advisory lock (the ASCII of "GTLEDGER" as a signed 64-bit integer), checks
the product is not in the log yet (no row returned then), hashes the canonical record the
caller built (RFC 9162 leaf: SHA-256(0x00 || record)), writes the leaf, every complete subtree
it completes (node = SHA-256(0x01 || left || right), the left siblings read by primary key),
the product's ``blockchain_hash``, and returns the leaf's index with the latest signed head's
size and time, so the caller signs a head when one is due.

``gt_ledger_product_record`` writes a product's canonical record (version 1, the package
docstring of ``traceability.ledger``) byte for byte as ``records.product_record`` and
``canonical_json`` do: keys sorted, no whitespace, strings escaped as Python's ``json`` escapes
them with ``ensure_ascii=False`` (``to_json``: ``"``, ``\``, ``\b \f \n \r \t``, other
controls as lowercase ``\u00xx``), floats in Python's ``repr`` form (PostgreSQL's shortest
round-trip digits, ``extra_float_digits`` above 0, with ``.0`` added to integral values), times in
UTC with microseconds. Where the two forms could differ (NaN, infinities, magnitudes from 1e15 to
1e16, which Python writes in fixed notation, years outside 1000-9999) it returns NULL and
``ledger_append_product`` returns ``needs_record``: the caller builds the record in Python.
A test compares both on edge values. The helpers are plain SQL, inlined where they are
called: ``verify_ledger`` recomputes a million records with them in seconds.

Error code: GTD01 a node the tree shape requires is missing (the ledger tables were altered).
"""

from django.db import migrations

FUNCTION_SQL = r"""
CREATE OR REPLACE FUNCTION ledger_append_leaf(
    p_product_pk integer, p_record text, p_sealed_at timestamptz
) RETURNS TABLE (leaf_index bigint, head_tree_size bigint, head_timestamp_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_size bigint;
    v_hash bytea;
    v_leaf bytea;
    v_left bytea;
    v_level smallint := 0;
    v_idx bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(5139816935118554450);  -- b"GTLEDGER"
    IF EXISTS (SELECT 1 FROM ledger_leaves l WHERE l.product_pk = p_product_pk) THEN
        RETURN;
    END IF;
    SELECT coalesce(max(l.leaf_index) + 1, 0) INTO v_size FROM ledger_leaves l;
    v_leaf := sha256('\x00'::bytea || convert_to(p_record, 'UTF8'));
    INSERT INTO ledger_leaves (leaf_index, product_pk, leaf_hash, record, sealed_at)
    VALUES (v_size, p_product_pk, v_leaf, p_record, p_sealed_at);
    INSERT INTO ledger_nodes (level, idx, hash) VALUES (0, v_size, v_leaf);
    v_hash := v_leaf;
    v_idx := v_size;
    WHILE v_idx & 1 = 1 LOOP
        SELECT n.hash INTO v_left FROM ledger_nodes n WHERE n.level = v_level AND n.idx = v_idx - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'ledger node (%, %) is missing', v_level, v_idx - 1
                USING ERRCODE = 'GTD01';
        END IF;
        v_hash := sha256('\x01'::bytea || v_left || v_hash);
        v_level := v_level + 1;
        v_idx := v_idx >> 1;
        INSERT INTO ledger_nodes (level, idx, hash) VALUES (v_level, v_idx, v_hash);
    END LOOP;
    UPDATE consumer_products SET blockchain_hash = encode(v_leaf, 'hex') WHERE id = p_product_pk;
    leaf_index := v_size;
    SELECT h.tree_size, h.timestamp_ms INTO head_tree_size, head_timestamp_ms
    FROM ledger_heads h ORDER BY h.tree_size DESC LIMIT 1;
    RETURN NEXT;
END;
$$;

-- A float as its canonical JSON token: null, or Python's repr in quotes (PostgreSQL's digits,
-- with ".0" added to integral values below 1e15); NULL when unsure. Callers set
-- extra_float_digits above 0 (PostgreSQL then writes the shortest round-trip digits; at 0 or
-- below it rounds): ledger_append_product and verify_ledger do. Plain SQL, so that it is
-- inlined into the statements that call it.
CREATE OR REPLACE FUNCTION gt_ledger_float(x float8) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN x IS NULL THEN 'null'
        WHEN x = 'NaN'::float8 OR abs(x) >= 1e15 AND abs(x) < 1e16
             OR x IN ('Infinity'::float8, '-Infinity'::float8) THEN NULL
        WHEN x = trunc(x) AND abs(x) < 1e15 THEN '"' || x::text || '.0"'
        ELSE '"' || x::text || '"'
    END
$$;

-- A time as its canonical JSON token: null, or UTC with microseconds; NULL when unsure.
CREATE OR REPLACE FUNCTION gt_ledger_time(ts timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN ts IS NULL THEN 'null'
        WHEN ts < '1000-01-01 00:00:00+00' OR ts >= '10000-01-01 00:00:00+00' THEN NULL
        ELSE '"' || to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"'
    END
$$;

CREATE OR REPLACE FUNCTION gt_ledger_json(v anyelement) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT coalesce(to_json(v)::text, 'null') $$;

-- The canonical record of a product (keys in code point order), or NULL when unsure.
CREATE OR REPLACE FUNCTION gt_ledger_product_record(p consumer_products) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"created_at":' || gt_ledger_time(p.created_at)
        || ',"fusion_grade":' || gt_ledger_json(p.sqal_fusion_grade)
        || ',"fusion_score":' || gt_ledger_float(p.sqal_fusion_score)
        || ',"is_compliant":' || gt_ledger_json(p.sqal_is_compliant)
        || ',"lot_code":' || gt_ledger_json(p.lot_code)
        || ',"lot_feeding_days":' || gt_ledger_json(p.lot_duree_gavage_jours)
        || ',"lot_feeding_end":' || gt_ledger_time(p.lot_date_fin_gavage)
        || ',"lot_feeding_start":' || gt_ledger_time(p.lot_date_debut_gavage)
        || ',"lot_id":' || gt_ledger_json(p.lot_id)
        || ',"lot_itm":' || gt_ledger_float(p.lot_itm_moyen)
        || ',"lot_mean_final_weight_g":' || gt_ledger_float(p.lot_poids_moyen_final_g)
        || ',"product_id":' || gt_ledger_json(p.product_id)
        || ',"qr_code":' || gt_ledger_json(p.qr_code)
        || ',"site_code":' || gt_ledger_json(p.site_code)
        || ',"spectral_freshness_index":' || gt_ledger_float(p.sqal_spectral_freshness_index)
        || ',"sqal_sample_id":' || gt_ledger_json(p.sqal_sample_id)
        || ',"tof_surface_uniformity":' || gt_ledger_float(p.sqal_tof_surface_uniformity)
        || ',"tof_volume_mm3":' || gt_ledger_float(p.sqal_tof_volume_mm3)
        || ',"v":1}'
$$;

-- Seal a product by its public id: no row when it is unknown or already sealed; a row with
-- needs_record when its record must be built in Python (then call ledger_append_leaf).
CREATE OR REPLACE FUNCTION ledger_append_product(p_product_id text, p_sealed_at timestamptz)
RETURNS TABLE (
    leaf_index bigint, head_tree_size bigint, head_timestamp_ms bigint, needs_record boolean
)
LANGUAGE plpgsql SET extra_float_digits = 1 AS $$
DECLARE
    v_product consumer_products;
    v_record text;
BEGIN
    SELECT * INTO v_product FROM consumer_products p WHERE p.product_id = p_product_id;
    IF NOT FOUND OR EXISTS (SELECT 1 FROM ledger_leaves l WHERE l.product_pk = v_product.id) THEN
        RETURN;  -- unknown, or sealed already (checked again under the lock)
    END IF;
    v_record := gt_ledger_product_record(v_product);
    IF v_record IS NULL THEN
        needs_record := true;
        RETURN NEXT;
        RETURN;
    END IF;
    needs_record := false;
    RETURN QUERY SELECT a.leaf_index, a.head_tree_size, a.head_timestamp_ms, false
        FROM ledger_append_leaf(v_product.id, v_record, p_sealed_at) a;
END;
$$;
"""

REVERSE_SQL = """
DROP FUNCTION IF EXISTS ledger_append_product(text, timestamptz);
DROP FUNCTION IF EXISTS gt_ledger_product_record(consumer_products);
DROP FUNCTION IF EXISTS gt_ledger_json(anyelement);
DROP FUNCTION IF EXISTS gt_ledger_time(timestamptz);
DROP FUNCTION IF EXISTS gt_ledger_float(float8);
DROP FUNCTION IF EXISTS ledger_append_leaf(integer, text, timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [("traceability", "0013_recalls_append_only")]

    operations = [migrations.RunSQL(sql=FUNCTION_SQL, reverse_sql=REVERSE_SQL)]
