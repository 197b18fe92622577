"""Recall permissions for the staff roles (recalls exist since traceability/0012).

- Quality staff: declare (``add_recall``), close (``add_recallclosure``), and read them
  (reach and CSV of affected units: ``view_recall``).
- Analyst: read only (``view_recall``, ``view_recallclosure``).
Recalls have no change or delete permission (append-only). Inlined: migrations never import
application code.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Quality staff": ["add_recall", "view_recall", "add_recallclosure", "view_recallclosure"],
    "Analyst": ["view_recall", "view_recallclosure"],
}


def _permissions(apps, codenames):
    Permission = apps.get_model("auth", "Permission")
    return Permission.objects.filter(
        content_type__app_label="traceability", codename__in=codenames
    )


def grant(apps, schema_editor):
    # Permissions are made after migrate (post_migrate); make them now so the groups get them.
    app_config = apps.get_app_config("traceability")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    for name, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*_permissions(apps, codenames))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name, codenames in GRANTS.items():
        for group in Group.objects.filter(name=name):
            group.permissions.remove(*_permissions(apps, codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_staff_roles"),
        ("traceability", "0013_recalls_append_only"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
