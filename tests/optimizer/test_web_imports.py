"""Web processes must not load pandas, scikit-learn or matplotlib through the optimizer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import django
django.setup()
import gaveurs.admin, gaveurs.services, optimizer.admin, optimizer.models, optimizer.services
import optimizer.curves
heavy = sorted(m for m in ("pandas", "sklearn", "matplotlib") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_admin_models_and_services_do_not_import_the_heavy_libraries():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "gaveurs.settings",
        # never connected to: importing code must not need the database
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none",
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"
