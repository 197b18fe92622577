"""Objects the benches start from (sites, producers, lots, stations, samples): the bench's own
builders, so that ``bench/`` imports nothing from ``tests/``. Keyword arguments override fields.

Import after ``django.setup()``.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from django.utils import timezone

from gaveurs.models import Gaveur, Lot, Site
from sensors.models import Device, SensorSample

_counter = itertools.count(1)


def make_site(**kw: Any) -> Site:
    code = kw.pop("code", "LL")
    site, _ = Site.objects.get_or_create(code=code, defaults={"name": f"Site {code}", **kw})
    return site


def make_gaveur(**kw: Any) -> Gaveur:
    site = kw.pop("site", None) or make_site()
    defaults = {"last_name": "Martin", "first_name": "Jean"}
    defaults.update(kw)
    return Gaveur.objects.create(site=site, **defaults)


def make_lot(**kw: Any) -> Lot:
    n = next(_counter)
    site = kw.pop("site", None) or make_site()
    gaveur = kw.pop("gaveur", None) or make_gaveur(site=site)
    start = kw.pop("feeding_start", None) or timezone.now() - timedelta(days=20)
    defaults = {
        "code": f"{site.code}26{n:05d}",
        "feeding_start": start,
        "planned_feeding_end": start + timedelta(days=14),
        "duration_days": 14,
        "itm": 125.5,
        "mean_final_weight_g": 7850,
        "duck_count": 200,
        "status": Lot.Status.SLAUGHTERED,
    }
    defaults.update(kw)
    return Lot.objects.create(gaveur=gaveur, site=site, **defaults)


def make_device(**kw: Any) -> Device:
    device_id = kw.pop("device_id", "ESP32_LL_01")
    device, _ = Device.objects.get_or_create(device_id=device_id, defaults=kw)
    return device


def make_sample(**kw: Any) -> SensorSample:
    n = next(_counter)
    device = kw.pop("device", None) or make_device()
    defaults: dict[str, Any] = {
        "time": timezone.now(),
        "sample_id": f"{device.device_id}_{n:04d}",
        "site_code": "LL",
        "tof_volume_mm3": 125000.0,
        "tof_surface_uniformity": 0.92,
        "spectral_freshness_index": 0.89,
        "fusion_score": 0.87,
        "fusion_grade": "A+",
        "is_compliant": True,
        "payload": {},
    }
    defaults.update(kw)
    return SensorSample.objects.create(device=device, **defaults)
