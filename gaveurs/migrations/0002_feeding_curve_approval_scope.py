"""Approved curves carry their scope and dates (written by the optimiser's approval), so that
gaveurs picks the curve of a new lot without reading the optimiser's tables."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('gaveurs', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='feedingcurve',
            name='approved_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='feedingcurve',
            name='gaveur',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='feeding_curves', to='gaveurs.gaveur'),
        ),
        migrations.AddField(
            model_name='feedingcurve',
            name='retired_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='feedingcurve',
            name='site',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='feeding_curves', to='gaveurs.site'),
        ),
        migrations.AddField(
            model_name='feedingcurve',
            name='source',
            field=models.CharField(blank=True, help_text='Where an approved curve comes from.', max_length=120),
        ),
    ]
