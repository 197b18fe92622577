"""Small factories for tests: each makes one valid object, keyword arguments override fields."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from feedback.models import ConsumerFeedback
from feedback.services import feedback_submit
from gaveurs.models import Gaveur, Lot, Site
from sensors.models import Device, SensorSample
from traceability.models import ConsumerProduct
from traceability.recalls import recall_declare
from traceability.services import product_register

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


def make_staff(username: str = "qualite", *perms: str, password: str = "x-long-password-1") -> Any:
    """An active staff user holding exactly ``perms`` (``"app_label.codename"``)."""
    user = get_user_model().objects.create_user(username, password=password, is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".", 1)
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return get_user_model().objects.get(pk=user.pk)  # a fresh instance: no stale perm cache


def make_product(lot: Any = None, **sample_kw: Any) -> ConsumerProduct:
    """A real product, registered by the PL/pgSQL function from a compliant sample."""
    lot = lot or make_lot()
    sample = make_sample(lot=lot, **sample_kw)
    registered = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    return ConsumerProduct.objects.get(product_id=registered.product_id)


RATINGS = {
    "overall_rating": 5,
    "taste_rating": 5,
    "texture_rating": 4,
    "appearance_rating": 5,
    "value_rating": 4,
}


def review(product: ConsumerProduct, **kw: Any) -> ConsumerFeedback:
    """A consumer's review of ``product``, through the live service."""
    return feedback_submit(qr_code=product.qr_code, **{**RATINGS, **kw})


def forged(code: str) -> str:
    """The same code with its signature's last hex digit changed."""
    return code[:-1] + ("0" if code[-1] != "0" else "1")


def declare_lot_recall(lot: Lot, *, reference: str = "RC-TEST-1"):
    """A recall of ``lot``, in force from now, with instructions in French and English."""
    return recall_declare(
        kind="recall",
        reference=reference,
        reason="Listeria",
        instructions_fr="Rapportez-le au magasin.",
        instructions_en="Take it back to the shop.",
        starts_at=timezone.now(),
        scope="lots",
        lot_ids=[lot.pk],
    )
