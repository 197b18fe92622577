"""Staff roles: the Django groups a staff account is put in. Their permissions are set by the
data migrations of this app (``accounts/migrations/``), the one place that lists them."""

from __future__ import annotations

QUALITY = "Quality staff"
ANALYST = "Analyst"
STATION_ADMIN = "Station admin"

# The --role names of manage.py create_staff_user.
ROLES = {"quality": QUALITY, "analyst": ANALYST, "station-admin": STATION_ADMIN}
