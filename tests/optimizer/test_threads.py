"""The optimizer's one-thread limit holds from a process's first run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter, as `manage.py optimize_curves` is: nothing of scikit-learn or SciPy
# loaded before the limit is taken.
PROBE = """
import json
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")
import django
django.setup()
from optimizer.learning import one_thread
with one_thread():
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from threadpoolctl import threadpool_info
    print(json.dumps([(i["internal_api"], i["num_threads"]) for i in threadpool_info()]))
"""


def test_one_thread_limits_the_libraries_scikit_learn_loads_on_first_import():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )

    pools = json.loads(done.stdout.strip().splitlines()[-1])

    assert {api for api, _ in pools} >= {"openmp", "openblas"}
    assert all(threads == 1 for _, threads in pools), pools
