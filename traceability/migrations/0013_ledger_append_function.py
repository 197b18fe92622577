"""PL/pgSQL ``ledger_append_leaf``: one product's leaf appended in one round trip.

The append used to be four statements from Python (advisory lock, the log's state and frontier,
the leaf and node inserts, the product's hash); here it is one call. It takes the same
transaction-scoped advisory lock (the ASCII of "GTLEDGER" as a signed 64-bit integer), checks
the product is not in the log yet (no row returned then), hashes the canonical record the
caller built (RFC 9162 leaf: SHA-256(0x00 || record)), writes the leaf, every complete subtree
it completes (node = SHA-256(0x01 || left || right), the left siblings read by primary key),
the product's ``blockchain_hash``, and returns the leaf's index with the latest signed head's
size and time, so the caller signs a head when one is due.

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
"""

REVERSE_SQL = "DROP FUNCTION IF EXISTS ledger_append_leaf(integer, text, timestamptz);"


class Migration(migrations.Migration):
    dependencies = [("traceability", "0012_ledger_entry_kinds_and_recalls")]

    operations = [migrations.RunSQL(sql=FUNCTION_SQL, reverse_sql=REVERSE_SQL)]
