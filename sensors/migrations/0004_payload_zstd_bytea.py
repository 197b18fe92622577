"""Sample payloads: jsonb (pglz) becomes zstd-compressed JSON text in a bytea.

See sensors/payload.py for the measurements behind it. Existing rows are converted: their jsonb
text is compressed in batches. STORAGE EXTERNAL: the bytes are already compressed, PostgreSQL
must not try again. Migrations never import app code: the zstd calls of sensors/payload.py are
written here again (level 1, the frame carries its content size), and the field is the bytea
(BinaryField) the model's CompressedJSONField is stored as.
"""

import zstandard
from django.db import migrations, models

TABLE = "sqal_sensor_samples"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 200
LEVEL = 1


def compress_text(text: str) -> bytes:
    return zstandard.ZstdCompressor(level=LEVEL).compress(text.encode())


def payload_text(data: bytes) -> str:
    return zstandard.ZstdDecompressor().decompress(data).decode()


def _rewrite_rows(schema_editor, convert) -> None:
    """Rewrite every payload, ``CHUNK`` rows at a time: ``convert(bytes)`` gives the new bytes,
    or None to leave the row as it is."""
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
            updates = [(new, pk) for pk, data in rows if (new := convert(bytes(data))) is not None]
            if updates:
                cursor.executemany(f"UPDATE {TABLE} SET payload = %s WHERE id = %s", updates)


def compress_rows(apps, schema_editor):
    _rewrite_rows(
        schema_editor,
        lambda data: (
            None if data[:4] == ZSTD_MAGIC else compress_text(data.decode())
        ),
    )


def decompress_rows(apps, schema_editor):
    _rewrite_rows(
        schema_editor,
        lambda data: (
            payload_text(data).encode() if data[:4] == ZSTD_MAGIC else None
        ),
    )


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
                    field=models.BinaryField(help_text="The full message as received."),
                ),
            ],
        ),
        migrations.RunPython(compress_rows, decompress_rows),
    ]
