"""Staff roles as groups with their permissions.

- Quality staff: lots and feeding, samples, alerts (acknowledge, resolve), products and labels,
  product registration, review moderation, curve approval (and recalls when they exist).
- Analyst: reads everything and the optimisation results; changes and approves nothing.
- Station admin: stations (devices) and their tokens, quality thresholds; reads samples, alerts.

Permissions are named by codename within the project's apps, so a model that moves between
apps (with a state-only migration) keeps its role; ``sync_roles`` is idempotent and later
migrations of this app re-run it when models are added or moved. Inlined here: migrations
never import application code.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PROJECT_APPS = ["gaveurs", "sensors", "traceability", "feedback", "optimizer"]
READ_ALSO = ["django_celery_results"]

QUALITY = {
    "view": [
        "site", "gaveur", "feedingcurve", "feedingcurveday", "lot", "feedingrecord",
        "device", "sensorsample", "qualitythreshold", "qualityalert",
        "consumerproduct", "ledgerhead", "ledgerverification",
        "consumerfeedback", "lotreviewstats", "productscanstats", "scanevent", "scanalert",
        "forgedscanattempt", "optimizationrun", "optimizedcurve", "recall",
    ],
    "add": ["lot", "feedingrecord", "consumerproduct", "recall"],
    "change": [
        "lot", "feedingrecord", "sensorsample", "qualityalert", "consumerfeedback",
        "scanalert", "optimizedcurve", "recall",
    ],
}
STATION_ADMIN = {
    "view": ["site", "lot", "device", "sensorsample", "qualitythreshold", "qualityalert"],
    "add": ["device", "qualitythreshold"],
    "change": ["device", "qualitythreshold"],
    "delete": ["device"],
}


def sync_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    # Permissions are made after migrate (post_migrate); make them now so the groups get them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    project = Permission.objects.filter(content_type__app_label__in=PROJECT_APPS)

    def chosen(spec):
        codenames = [f"{action}_{model}" for action, models in spec.items() for model in models]
        return list(project.filter(codename__in=codenames))

    read_all = Permission.objects.filter(
        content_type__app_label__in=PROJECT_APPS + READ_ALSO, codename__startswith="view_"
    )
    for name, permissions in [
        ("Quality staff", chosen(QUALITY)),
        ("Analyst", list(read_all)),
        ("Station admin", chosen(STATION_ADMIN)),
    ]:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Quality staff", "Analyst", "Station admin"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("gaveurs", "0004_site_gs1_keys_checked"),
        ("sensors", "0006_device_lots_of_any_site"),
        ("traceability", "0008_task_scopes_for_existing_tokens"),
        ("feedback", "0004_scans_move_to_traceability_state_only"),
        ("optimizer", "0002_feeding_curve_scope_from_approvals"),
        ("django_celery_results", "0014_alter_taskresult_status"),
    ]

    operations = [migrations.RunPython(sync_roles, remove_roles)]
