"""Tokens made before scopes existed keep what they could do: the task API.

From now on each endpoint checks a scope (traceability/auth.py ``SCOPES``); a token with none
could call the task API before, so it is given ``tasks:read`` and ``tasks:write``.
"""

from django.db import migrations


def grant_task_scopes(apps, schema_editor):
    ApiToken = apps.get_model("traceability", "ApiToken")
    for token in ApiToken.objects.filter(scopes=[]):
        token.scopes = ["tasks:read", "tasks:write"]
        token.save(update_fields=["scopes"])


class Migration(migrations.Migration):
    dependencies = [("traceability", "0007_api_token_scopes")]

    operations = [migrations.RunPython(grant_task_scopes, migrations.RunPython.noop)]
