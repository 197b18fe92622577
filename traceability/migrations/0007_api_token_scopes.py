"""Scopes of API tokens: a token reads EPCIS events only with the scope ``epcis:read``."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("traceability", "0006_scans_from_feedback_state_only")]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scopes",
            field=models.JSONField(blank=True, default=list, help_text='e.g. ["epcis:read"]'),
        ),
    ]
