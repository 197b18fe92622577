"""Sample payloads: jsonb (pglz) becomes zstd-compressed JSON text in a bytea.

See sensors/payload.py for the measurements behind it. Existing rows are converted: their jsonb
text is compressed in batches. STORAGE EXTERNAL: the bytes are already compressed, PostgreSQL
must not try again.
"""

from django.db import migrations

import sensors.payload

TABLE = "sqal_sensor_samples"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 200


def compress_rows(apps, schema_editor):
    connection = schema_editor.connection
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, payload FROM {TABLE} WHERE id > %s ORDER BY id LIMIT %s",
                [last, CHUNK],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            last = rows[-1][0]
            updates = [
                (sensors.payload.compress_text(bytes(data).decode()), pk)
                for pk, data in rows
                if bytes(data[:4]) != ZSTD_MAGIC
            ]
            if updates:
                cursor.executemany(f"UPDATE {TABLE} SET payload = %s WHERE id = %s", updates)


def decompress_rows(apps, schema_editor):
    connection = schema_editor.connection
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, payload FROM {TABLE} WHERE id > %s ORDER BY id LIMIT %s",
                [last, CHUNK],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            last = rows[-1][0]
            updates = [
                (sensors.payload.payload_text(data).encode(), pk)
                for pk, data in rows
                if bytes(data[:4]) == ZSTD_MAGIC
            ]
            if updates:
                cursor.executemany(f"UPDATE {TABLE} SET payload = %s WHERE id = %s", updates)


class Migration(migrations.Migration):
    dependencies = [
        ("sensors", "0003_default_thresholds"),
    ]

    operations = [
        migrations.RunSQL(
            sql=[
                f"ALTER TABLE {TABLE} ALTER COLUMN payload TYPE bytea "
                f"USING convert_to(payload::text, 'UTF8')",
                f"ALTER TABLE {TABLE} ALTER COLUMN payload SET STORAGE EXTERNAL",
            ],
            reverse_sql=[
                f"ALTER TABLE {TABLE} ALTER COLUMN payload SET STORAGE EXTENDED",
                f"ALTER TABLE {TABLE} ALTER COLUMN payload TYPE jsonb "
                f"USING convert_from(payload, 'UTF8')::jsonb",
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="sensorsample",
                    name="payload",
                    field=sensors.payload.CompressedJSONField(
                        help_text="The full message as received."
                    ),
                ),
            ],
        ),
        migrations.RunPython(compress_rows, decompress_rows),
    ]
