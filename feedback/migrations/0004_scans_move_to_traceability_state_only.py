"""The scan models move to traceability (0006 there): state only, the tables stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('feedback', '0003_leaner_scan_indexes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(
                    name='ForgedScanAttempt',
                ),
                migrations.RemoveField(
                    model_name='scanalert',
                    name='product',
                ),
                migrations.RemoveField(
                    model_name='scanevent',
                    name='product',
                ),
                migrations.DeleteModel(
                    name='ProductScanStats',
                ),
                migrations.DeleteModel(
                    name='ScanAlert',
                ),
                migrations.DeleteModel(
                    name='ScanEvent',
                ),
            ],
            database_operations=[],
        ),
    ]
