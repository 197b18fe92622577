"""PL/pgSQL: HMAC-signed QR codes and idempotent consumer product registration.

Fixes the seed's defects: the product id is never re-parsed out of the QR (sample ids hold
underscores); the signature is an HMAC-SHA256 of stored fields under a server-held key handed to
each session as the custom setting ``gaveurs.qr_key`` (never stored in the database), so it can
be recomputed later; only built-in ``sha256`` is used (no pgcrypto); product numbers come from a
per-site daily counter and never wrap; a second call for the same sample returns the first product.

Error codes (SQLSTATE) the application maps to clear messages:
GTK01 key not configured, GTL01 unknown lot, GTS01 unknown sample, GTS02 ambiguous sample id,
GTS03 sample not compliant or graded REJECT, GTS04 sample belongs to another lot (or none),
GTS05 malformed site code or sample id.
"""

from django.db import migrations

FUNCTIONS_SQL = r"""
CREATE OR REPLACE FUNCTION gt_qr_key() RETURNS bytea
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_hex text := current_setting('gaveurs.qr_key', true);
BEGIN
    IF v_hex IS NULL OR v_hex = '' THEN
        RAISE EXCEPTION 'QR signing key is not configured for this session (gaveurs.qr_key)'
            USING ERRCODE = 'GTK01';
    END IF;
    RETURN decode(v_hex, 'hex');
END;
$$;

CREATE OR REPLACE FUNCTION gt_hmac_sha256(p_key bytea, p_message bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    v_key bytea := p_key;
    v_ipad bytea;
    v_opad bytea;
    i integer;
BEGIN
    -- RFC 2104 with a 64-byte block.
    IF length(v_key) > 64 THEN
        v_key := sha256(v_key);
    END IF;
    v_key := v_key || decode(repeat('00', 64 - length(v_key)), 'hex');
    v_ipad := v_key;
    v_opad := v_key;
    FOR i IN 0..63 LOOP
        v_ipad := set_byte(v_ipad, i, get_byte(v_key, i) # 54);
        v_opad := set_byte(v_opad, i, get_byte(v_key, i) # 92);
    END LOOP;
    RETURN sha256(v_opad || sha256(v_ipad || p_message));
END;
$$;

CREATE OR REPLACE FUNCTION qr_signature(p_lot_id bigint, p_sample_id varchar, p_product_id varchar)
RETURNS varchar
LANGUAGE sql STABLE AS $$
    SELECT substr(encode(gt_hmac_sha256(
        gt_qr_key(),
        convert_to(p_lot_id::text || '|' || p_sample_id || '|' || p_product_id, 'UTF8')
    ), 'hex'), 1, 16)::varchar;
$$;

CREATE OR REPLACE FUNCTION generate_qr_code(
    p_lot_id bigint,
    p_sample_id varchar,
    p_site_code varchar DEFAULT 'LL'
)
RETURNS TABLE (product_id varchar, qr_code varchar)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_day date := (now() AT TIME ZONE 'Europe/Paris')::date;
    v_seq integer;
BEGIN
    IF p_site_code IS NULL OR p_site_code !~ '^[A-Z]{2,5}$' THEN
        RAISE EXCEPTION 'site code % is not 2 to 5 capital letters', quote_nullable(p_site_code)
            USING ERRCODE = 'GTS05';
    END IF;
    IF p_sample_id IS NULL OR p_sample_id = '' OR length(p_sample_id) > 100 THEN
        RAISE EXCEPTION 'sample id must be 1 to 100 characters' USING ERRCODE = 'GTS05';
    END IF;
    INSERT INTO consumer_product_sequences AS s (site_code, day, last_value)
    VALUES (p_site_code, v_day, 1)
    ON CONFLICT (site_code, day) DO UPDATE SET last_value = s.last_value + 1
    RETURNING s.last_value INTO v_seq;

    product_id := 'FG_' || p_site_code || '_' || to_char(v_day, 'YYYYMMDD') || '_'
        || lpad(v_seq::text, greatest(4, length(v_seq::text)), '0');
    qr_code := 'SQAL_' || p_lot_id::text || '_' || p_sample_id || '_' || product_id || '_'
        || qr_signature(p_lot_id, p_sample_id, product_id);
    RETURN NEXT;
END;
$$;

CREATE OR REPLACE FUNCTION register_consumer_product(
    p_lot_id bigint,
    p_sample_id varchar,
    p_site_code varchar DEFAULT NULL
)
RETURNS TABLE (product_id varchar, qr_code varchar)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_lot lots_gavage%ROWTYPE;
    v_sample sqal_sensor_samples%ROWTYPE;
    v_matches integer;
    v_site varchar;
    v_pid varchar;
    v_qr varchar;
BEGIN
    SELECT * INTO v_lot FROM lots_gavage l WHERE l.id = p_lot_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown lot %', p_lot_id USING ERRCODE = 'GTL01';
    END IF;

    SELECT count(*) INTO v_matches FROM sqal_sensor_samples s WHERE s.sample_id = p_sample_id;
    IF v_matches = 0 THEN
        RAISE EXCEPTION 'unknown sample %', quote_nullable(p_sample_id) USING ERRCODE = 'GTS01';
    END IF;

    -- Lock the sample: concurrent registrations of one sample run one after the other,
    -- and the second finds the product of the first.
    SELECT * INTO v_sample FROM sqal_sensor_samples s
    WHERE s.sample_id = p_sample_id AND s.lot_id = p_lot_id
    ORDER BY s.id
    FOR UPDATE;
    IF v_sample.id IS NULL THEN
        RAISE EXCEPTION 'sample % does not belong to lot %', p_sample_id, p_lot_id
            USING ERRCODE = 'GTS04';
    END IF;
    IF (SELECT count(*) FROM sqal_sensor_samples s
        WHERE s.sample_id = p_sample_id AND s.lot_id = p_lot_id) > 1 THEN
        RAISE EXCEPTION 'sample id % is used by several stations in lot %', p_sample_id, p_lot_id
            USING ERRCODE = 'GTS02';
    END IF;
    IF NOT v_sample.is_compliant OR v_sample.fusion_grade = 'REJECT' THEN
        RAISE EXCEPTION 'sample % is not eligible: compliant=%, grade=%',
            p_sample_id, v_sample.is_compliant, v_sample.fusion_grade
            USING ERRCODE = 'GTS03';
    END IF;

    SELECT cp.product_id, cp.qr_code INTO v_pid, v_qr
    FROM consumer_products cp WHERE cp.sqal_sample_pk = v_sample.id;
    IF FOUND THEN
        product_id := v_pid;
        qr_code := v_qr;
        RETURN NEXT;
        RETURN;
    END IF;

    v_site := coalesce(nullif(p_site_code, ''),
                       (SELECT st.code FROM gaveurs_site st WHERE st.id = v_lot.site_id));
    SELECT g.product_id, g.qr_code INTO v_pid, v_qr
    FROM generate_qr_code(p_lot_id, p_sample_id, v_site) g;

    INSERT INTO consumer_products (
        product_id, qr_code, lot_id, sqal_sample_pk, sqal_sample_id, site_code,
        sqal_fusion_score, sqal_fusion_grade, sqal_is_compliant,
        sqal_tof_volume_mm3, sqal_tof_surface_uniformity, sqal_spectral_freshness_index,
        lot_code, lot_itm_moyen, lot_poids_moyen_final_g,
        lot_date_debut_gavage, lot_date_fin_gavage, lot_duree_gavage_jours,
        blockchain_hash, created_at
    ) VALUES (
        v_pid, v_qr, p_lot_id, v_sample.id, p_sample_id, v_site,
        v_sample.fusion_score, v_sample.fusion_grade, v_sample.is_compliant,
        v_sample.tof_volume_mm3, v_sample.tof_surface_uniformity,
        v_sample.spectral_freshness_index,
        v_lot.code, v_lot.itm, v_lot.mean_final_weight_g,
        v_lot.feeding_start, v_lot.planned_feeding_end,
        coalesce(v_lot.duration_days::integer,
                 round(extract(epoch FROM (v_lot.planned_feeding_end - v_lot.feeding_start))
                       / 86400)::integer),
        '', now()
    )
    ON CONFLICT (sqal_sample_pk) DO NOTHING;

    IF NOT FOUND THEN
        SELECT cp.product_id, cp.qr_code INTO v_pid, v_qr
        FROM consumer_products cp WHERE cp.sqal_sample_pk = v_sample.id;
    END IF;
    product_id := v_pid;
    qr_code := v_qr;
    RETURN NEXT;
END;
$$;
"""

REVERSE_SQL = """
DROP FUNCTION IF EXISTS register_consumer_product(bigint, varchar, varchar);
DROP FUNCTION IF EXISTS generate_qr_code(bigint, varchar, varchar);
DROP FUNCTION IF EXISTS qr_signature(bigint, varchar, varchar);
DROP FUNCTION IF EXISTS gt_hmac_sha256(bytea, bytea);
DROP FUNCTION IF EXISTS gt_qr_key();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("traceability", "0001_initial"),
        ("gaveurs", "0001_initial"),
        ("sensors", "0001_initial"),
    ]

    operations = [migrations.RunSQL(sql=FUNCTIONS_SQL, reverse_sql=REVERSE_SQL)]
