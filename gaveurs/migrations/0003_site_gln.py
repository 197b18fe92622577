"""A site's GS1 Global Location Number, which identifies it in EPCIS events."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("gaveurs", "0002_feeding_curve_approval_scope")]

    operations = [
        migrations.AddField(
            model_name="site",
            name="gln",
            field=models.CharField(
                blank=True,
                help_text="GS1 Global Location Number (13 digits).",
                max_length=13,
                verbose_name="GLN",
            ),
        ),
    ]
