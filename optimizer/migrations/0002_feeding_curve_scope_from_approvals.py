"""Copy each approved or retired optimised curve's scope and dates onto its feeding curve
(gaveurs 0002 added those fields); gaveurs reads only them from now on. Migrations never import
app code: the historical models are used."""

from django.db import migrations


def copy_scopes(apps, schema_editor):
    OptimizedCurve = apps.get_model("optimizer", "OptimizedCurve")
    FeedingCurve = apps.get_model("gaveurs", "FeedingCurve")
    for curve in OptimizedCurve.objects.exclude(feeding_curve=None).exclude(approved_at=None):
        FeedingCurve.objects.filter(pk=curve.feeding_curve_id).update(
            site_id=curve.site_id,
            gaveur_id=curve.gaveur_id,
            approved_at=curve.approved_at,
            retired_at=curve.retired_at if curve.status == "retired" else None,
            source=f"optimised curve v{curve.version}",
        )


class Migration(migrations.Migration):
    dependencies = [
        ("optimizer", "0001_initial"),
        ("gaveurs", "0002_feeding_curve_approval_scope"),
    ]

    operations = [migrations.RunPython(copy_scopes, migrations.RunPython.noop)]
