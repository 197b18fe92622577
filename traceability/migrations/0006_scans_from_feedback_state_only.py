"""The scan models, moved from feedback (0004 there): state only, same tables, no data moves."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('traceability', '0005_gs1_serial'),
        ('feedback', '0004_scans_move_to_traceability_state_only'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ForgedScanAttempt',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('code', models.CharField(max_length=300)),
                        ('claimed_product_id', models.CharField(blank=True, max_length=50)),
                        ('attempted_at', models.DateTimeField(db_index=True)),
                        ('channel', models.CharField(choices=[('page', 'Scan page'), ('api', 'API')], max_length=8)),
                        ('country', models.CharField(blank=True, max_length=2)),
                        ('place_source', models.CharField(blank=True, choices=[('', 'Unknown'), ('cdn', 'CDN country header'), ('language', 'Browser language region')], max_length=10)),
                        ('client_hash', models.CharField(blank=True, max_length=16)),
                    ],
                    options={
                        'db_table': 'feedback_forged_scan_attempts',
                        'ordering': ['-attempted_at'],
                    },
                ),
                migrations.CreateModel(
                    name='ProductScanStats',
                    fields=[
                        ('product', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='scan_stats', serialize=False, to='traceability.consumerproduct')),
                        ('scan_count', models.PositiveIntegerField(default=0)),
                        ('first_scanned_at', models.DateTimeField()),
                        ('last_scanned_at', models.DateTimeField()),
                    ],
                    options={
                        'verbose_name': 'product scan count',
                        'db_table': 'feedback_product_scan_stats',
                        'ordering': ['-scan_count'],
                    },
                ),
                migrations.CreateModel(
                    name='ScanAlert',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('threshold', models.PositiveIntegerField()),
                        ('scan_count', models.PositiveIntegerField(help_text='Scans when the alert was raised.')),
                        ('raised_at', models.DateTimeField(db_index=True)),
                        ('is_resolved', models.BooleanField(default=False)),
                        ('resolution_note', models.CharField(blank=True, max_length=200)),
                        ('product', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='scan_alert', to='traceability.consumerproduct')),
                    ],
                    options={
                        'db_table': 'feedback_scan_alerts',
                        'ordering': ['is_resolved', '-raised_at'],
                    },
                ),
                migrations.CreateModel(
                    name='ScanEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('scanned_at', models.DateTimeField()),
                        ('channel', models.CharField(choices=[('page', 'Scan page'), ('api', 'API')], max_length=8)),
                        ('country', models.CharField(blank=True, max_length=2)),
                        ('place_source', models.CharField(blank=True, choices=[('', 'Unknown'), ('cdn', 'CDN country header'), ('language', 'Browser language region')], max_length=10)),
                        ('language', models.CharField(blank=True, max_length=8)),
                        ('client_hash', models.CharField(blank=True, help_text='HMAC of the client address and the day, truncated.', max_length=16)),
                        ('product', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='scan_events', to='traceability.consumerproduct')),
                    ],
                    options={
                        'db_table': 'feedback_scan_events',
                        'ordering': ['-scanned_at'],
                        'indexes': [models.Index(fields=['product', 'scanned_at'], name='feedback_sc_product_2146c1_idx')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
