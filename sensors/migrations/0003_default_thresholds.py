"""Default quality thresholds; staff edit or disable them in admin."""

from django.db import migrations

DEFAULTS = [
    # metric, operator, value, grade, severity, description
    ("fusion_grade", "lte", None, "REJECT", "critical", "Produit rejeté / Product rejected"),
    ("fusion_score", "lt", 0.6, "", "warning", "Score de fusion bas / Low fusion score"),
    ("spectral_freshness_index", "lt", 0.6, "", "warning", "Fraîcheur insuffisante / Low freshness"),
    ("spectral_oxidation_index", "gt", 0.5, "", "critical", "Oxydation élevée / High oxidation"),
    ("tof_surface_uniformity", "lt", 0.5, "", "warning", "Surface irrégulière / Uneven surface"),
]


def create_defaults(apps, schema_editor):
    QualityThreshold = apps.get_model("sensors", "QualityThreshold")
    for metric, operator, value, grade, severity, description in DEFAULTS:
        QualityThreshold.objects.get_or_create(
            metric=metric,
            operator=operator,
            value=value,
            grade=grade,
            defaults={"severity": severity, "description": description},
        )


def delete_defaults(apps, schema_editor):
    QualityThreshold = apps.get_model("sensors", "QualityThreshold")
    for metric, operator, value, grade, _severity, _description in DEFAULTS:
        QualityThreshold.objects.filter(
            metric=metric, operator=operator, value=value, grade=grade
        ).delete()


class Migration(migrations.Migration):
    dependencies = [("sensors", "0002_thresholds_alerts_token_index")]

    operations = [migrations.RunPython(create_defaults, delete_defaults)]
