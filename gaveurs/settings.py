"""Django settings for Gaveurs Trace.

Every deploy-time value comes from the environment, with a development default. In production
(DJANGO_ENV=production) the secrets have no default and the process refuses to start without them.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from gaveurs import embedded_pg

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def envint(name: str, default: str) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def envfloat(name: str, default: str) -> float:
    value = os.environ.get(name, default)
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def envsecret(name: str, dev_default: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set in production (DJANGO_ENV=production)")
    return dev_default


DJANGO_ENV = os.environ.get("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"
DEBUG = envbool("DEBUG", "False")

SECRET_KEY = envsecret("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
# Key of the QR signatures computed in PostgreSQL (HMAC-SHA256). Handed to each database session
# as a custom setting, never stored in the database.
QR_SIGNING_KEY = envsecret("QR_SIGNING_KEY", "dev-only-qr-signing-key")

ALLOWED_HOSTS = [
    h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Operations: /health/* (gaveurs/health.py) and /metrics (gaveurs/metrics.py)
    "health_check",
    "django_prometheus",
    "django.contrib.postgres",
    "channels",
    # django-ninja: serves Swagger UI's files itself (the docs page then loads with no CDN)
    "ninja",
    "django_celery_results",
    "axes",
    # Audit trail of staff changes (django-simple-history): HistoricalRecords on the models
    "simple_history",
    "gaveurs",
    "sensors",
    "traceability",
    "feedback",
    "optimizer",
    "accounts",
]

MIDDLEWARE = [
    # First: the request id every later log line carries (gaveurs/logs.py).
    "gaveurs.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from the app server (Daphne or a WSGI server), compressed and cached.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    # NUL in paths and queries, cross-site API writes: gaveurs/middleware.py
    "gaveurs.middleware.EdgeInputMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who made each change recorded in the audit trail
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Login throttling (django-axes): last, so it sees the outcome of the login views.
    "axes.middleware.AxesMiddleware",
]

# Brute-force protection of the staff login (django-axes). After AXES_FAILURE_LIMIT wrong passwords
# for one username from one address, that pair is locked out for AXES_COOLOFF_MINUTES (429); a
# success resets the count. The address is the client's as the consumer pages see it (behind
# TRUSTED_PROXY_HOPS reverse proxies, from X-Forwarded-For; never the header otherwise).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = timedelta(minutes=envint("AXES_COOLOFF_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "traceability.http.client_address"
AXES_SENSITIVE_PARAMETERS = ["password"]
# The audit trail is a record, not an undo button: no "revert" in the admin.
SIMPLE_HISTORY_REVERT_DISABLED = True

ROOT_URLCONF = "gaveurs.urls"
WSGI_APPLICATION = "gaveurs.wsgi.application"
ASGI_APPLICATION = "gaveurs.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: DATABASE_URL, or the embedded PostgreSQL (see gaveurs/embedded_pg.py).
DATABASES = {
    "default": dj_database_url.parse(
        embedded_pg.url_from_env(BASE_DIR),
        conn_max_age=envint("DB_CONN_MAX_AGE", "60"),
        conn_health_checks=envbool("DB_CONN_HEALTH_CHECKS", "True"),
    )
}
# DB_CONN_HEALTH_CHECKS: a reused connection is checked (SELECT 1, one more round trip) at the
# start of each request. Without the check a request that finds the connection dropped (database
# restarted) fails with a 500 and Django closes the connection at its end, so the next request
# reconnects: one failed request per process and restart, against one round trip on every request.
# The consumer pages' WSGI servers turn it off (a scan then costs one round trip: README,
# "Consumer pages"); Daphne and the workers keep it (stations resend on storage_error frames).
# The QR signing key reaches each database session through gaveurs/db_session.py, never through
# DATABASES (which error reports print).
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
# Serve from the app folders too, so the static files work before (or without) collectstatic.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))

# Channels: in-memory layer on one machine, Redis when REDIS_URL is set (several servers).
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Cache: local memory, per process, unless CACHE_URL (redis://...) is set. With several processes
# or hosts set it: the feedback rate limit and the forged-scan log limit then count across all of
# them (with local memory each process allows the full rate), and the scan page cache is shared.
CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "gaveurs"),
        }
    }


def _embedded_broker_url(db: dict) -> str:
    """kombu's SQLAlchemy transport on our own PostgreSQL: a broker that needs no server."""
    from urllib.parse import quote

    host = db.get("HOST") or ""
    user = quote(db.get("USER") or "postgres", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else f"{user}@"
    if host.startswith("/"):
        return f"gtsqla+postgresql+psycopg://{auth}/{db['NAME']}?host={quote(host, safe='/')}"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"gtsqla+postgresql+psycopg://{auth}{host}{port}/{db['NAME']}"


# Celery: Redis (or RabbitMQ) when CELERY_BROKER_URL is set, else the embedded transport.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or _embedded_broker_url(
    DATABASES["default"]
)
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"polling_interval": envfloat("CELERY_SQLA_POLL_INTERVAL", "0.1")}
    if CELERY_BROKER_URL.startswith("gtsqla+")
    else {}
)
# django-celery-results ("django-db"), whose writes wait for PostgreSQL through a restart instead
# of stopping the worker (gaveurs/results_backend.py; tests/faults/test_result_backend.py).
CELERY_RESULT_BACKEND = "gaveurs.results_backend:DatabaseBackend"
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ROUTES = {"traceability.tasks.*": {"queue": "exports"}}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Redis redelivers an unacknowledged task after this many seconds; it must exceed the
        # longest retry countdown (60 s), or a waiting retry would be delivered twice.
        "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", "3600"),
    }
    if os.environ.get("CELERY_REDIS_KEY_PREFIX"):
        # Several deployments (or test runs) sharing one Redis database stay apart.
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = os.environ["CELERY_REDIS_KEY_PREFIX"]
# Product registration: each worker, when it starts, re-enqueues the eligible samples without
# product received more than GRACE seconds (and less than MAX_AGE days) ago (traceability.tasks).
PRODUCT_SWEEP_GRACE_SECONDS = envint("PRODUCT_SWEEP_GRACE_SECONDS", "60")
PRODUCT_SWEEP_MAX_AGE_DAYS = envint("PRODUCT_SWEEP_MAX_AGE_DAYS", "30")
# An ingestion batch's registrations go in this many tasks (fewer for a smaller batch; more past
# 100 a task). One: splitting a batch of 13 between the worker's 2 processes did not shorten its
# ack -> product p95 on 2 cores, and cost a publish more per batch (bench/pipeline.py
# --compare-tasks-per-batch, README "Benchmarks"). Worth measuring again with more cores.
PRODUCT_TASKS_PER_BATCH = envint("PRODUCT_TASKS_PER_BATCH", "1")
# Celery's Django fixup closes the database connection around every task (a new PostgreSQL
# connection per task: half the ack-to-product latency, bench/pipeline.py). Keep them; tasks
# get Django's own CONN_MAX_AGE and health checks instead (traceability.tasks).
CELERY_DB_REUSE_MAX = envint("CELERY_DB_REUSE_MAX", "1000")

# SQAL ingestion
SQAL_ALLOW_UNREGISTERED_DEVICES = envbool("SQAL_ALLOW_UNREGISTERED_DEVICES", "False")
# A station token in the websocket URL (?token=...) ends up in every proxy's access log: refused
# unless a fleet of old firmware needs it (tokens belong in Authorization: Bearer).
SQAL_ALLOW_QUERY_TOKEN = envbool("SQAL_ALLOW_QUERY_TOKEN", "False")
SQAL_MAX_MESSAGE_BYTES = envint("SQAL_MAX_MESSAGE_BYTES", str(512 * 1024))
# Per-connection throttle (token bucket): sustained messages per second and burst size.
SQAL_THROTTLE_RATE = envfloat("SQAL_THROTTLE_RATE", "50")
SQAL_THROTTLE_BURST = envint("SQAL_THROTTLE_BURST", "100")
# Heartbeats have a bucket of their own (a station sends one every 30 s): answered within it,
# refused with an error frame (rule heartbeat_throttle) beyond it.
SQAL_HEARTBEAT_RATE = envfloat("SQAL_HEARTBEAT_RATE", "1")
SQAL_HEARTBEAT_BURST = envint("SQAL_HEARTBEAT_BURST", "5")
# Open websocket connections per station token, counted per server process (with N Daphne
# processes a station may hold N times this). The newest connection beyond it is refused: an
# error frame (rule max_connections_per_station), then close code 4429. Connections a station
# lost without closing are reaped by Daphne's ping timeout. 0: no bound.
SQAL_MAX_CONNECTIONS_PER_STATION = envint("SQAL_MAX_CONNECTIONS_PER_STATION", "4")
# Samples of one connection waiting for their commit; beyond it the server stops reading.
SQAL_MAX_IN_FLIGHT = envint("SQAL_MAX_IN_FLIGHT", "64")
# Group commit: at most this many samples (and bytes) per transaction.
SQAL_BATCH_MAX_SAMPLES = envint("SQAL_BATCH_MAX_SAMPLES", "200")
SQAL_BATCH_MAX_BYTES = envint("SQAL_BATCH_MAX_BYTES", str(16 * 1024 * 1024))
# Batches written at once (each on its own database connection).
SQAL_WRITERS = envint("SQAL_WRITERS", "2")
# A further writer starts only for at least this many queued samples (or bytes); below, they wait
# for the running batch and join the next one (sensors/batching.py).
SQAL_BATCH_PARALLEL_MIN_SAMPLES = envint("SQAL_BATCH_PARALLEL_MIN_SAMPLES", "64")
SQAL_BATCH_PARALLEL_MIN_BYTES = envint("SQAL_BATCH_PARALLEL_MIN_BYTES", str(2 * 1024 * 1024))

# Under ASGI (Daphne) Django runs each HTTP request in a thread of its own with a database
# connection of its own: unbounded, a burst of slow requests opens one connection per request in
# flight until PostgreSQL refuses them all ("too many clients": bench/soak.py with 200 consumers).
# At most this many HTTP requests run at once per server process, the others wait in the event
# loop (gaveurs/asgi.py); size it with max_connections in mind. 0: no bound.
ASGI_HTTP_CONCURRENCY = envint("ASGI_HTTP_CONCURRENCY", "16")

# Consumer pages
# Copied-label alert: more distinct (client, day) pairs than this scanned one unit's code.
SCAN_ALERT_THRESHOLD = envint("SCAN_ALERT_THRESHOLD", "50")
# Scans of one client (daily hash) counted per minute; past it pages are served, not counted.
SCAN_RECORD_PER_MINUTE = envint("SCAN_RECORD_PER_MINUTE", "20")
FEEDBACK_REWARD_POINTS = envint("FEEDBACK_REWARD_POINTS", "10")
# Feedback attempts allowed per client (daily-salted address hash) and window, page and API.
FEEDBACK_RATE_LIMIT = envint("FEEDBACK_RATE_LIMIT", "10")
FEEDBACK_RATE_WINDOW_SECONDS = envint("FEEDBACK_RATE_WINDOW_SECONDS", "3600")
FORGED_SCAN_LOG_PER_MINUTE = envint("FORGED_SCAN_LOG_PER_MINUTE", "5")
# The rendered scan page is cached per product, language and review state (the ledger block may
# lag by this much). Per process with the default local-memory cache.
SCAN_PAGE_CACHE_SECONDS = envint("SCAN_PAGE_CACHE_SECONDS", "60")
# Reverse proxies in front of the app that append the client's address to X-Forwarded-For.
# The consumer's address (only ever hashed: rate limits, scan counts) is then taken this many
# entries from the right of that header; 0 (the default) ignores the header, which any client
# can send, and uses REMOTE_ADDR. Set it to the number of proxies you run, never more.
TRUSTED_PROXY_HOPS = envint("TRUSTED_PROXY_HOPS", "0")

# Retention (docs/privacy.md): rows older than this many days are removed by
# `manage.py purge_expired` (run it daily from cron: README, "Privacy and retention").
# Scan events (place, language, daily client hash) feed staff's scan statistics and recall reach.
RETENTION_SCAN_EVENTS_DAYS = envint("RETENTION_SCAN_EVENTS_DAYS", "365")
# Forged-code attempts (the code as scanned, place, daily client hash): fraud investigation.
RETENTION_FORGED_ATTEMPTS_DAYS = envint("RETENTION_FORGED_ATTEMPTS_DAYS", "90")
# Celery task results (django-celery-results): the task status API hands out signed QR codes.
RETENTION_TASK_RESULTS_DAYS = envint("RETENTION_TASK_RESULTS_DAYS", "7")
# Logs kept in the database: staff logins and failed logins (django-axes, with IP addresses).
# Keep the process logs (stdout, collected by journald/docker) no longer than this either.
RETENTION_LOGS_DAYS = envint("RETENTION_LOGS_DAYS", "180")
for _name in [n for n in list(globals()) if n.startswith("RETENTION_")]:
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1 day, got {globals()[_name]}")
# Celery's own cleanup of results (celery.backend_cleanup, if a beat is ever run) agrees.
CELERY_RESULT_EXPIRES = timedelta(days=RETENTION_TASK_RESULTS_DAYS)

# Tamper-evident ledger (traceability/ledger/). LEDGER_SIGNING_KEY: the Ed25519 private key
# (32-byte seed, 64 hex digits or base64), required in production; in development it is derived
# from SECRET_KEY. A head is signed at most every INTERVAL seconds, or every MAX_PENDING products.
LEDGER_SIGNING_KEY = envsecret("LEDGER_SIGNING_KEY", "")
LEDGER_TRUSTED_PUBLIC_KEYS = [
    k for k in os.environ.get("LEDGER_TRUSTED_PUBLIC_KEYS", "").split(",") if k.strip()
]
LEDGER_HEAD_INTERVAL_SECONDS = envint("LEDGER_HEAD_INTERVAL_SECONDS", "60")
LEDGER_HEAD_MAX_PENDING = envint("LEDGER_HEAD_MAX_PENDING", "100")
LEDGER_PROOF_CACHE_SECONDS = envint("LEDGER_PROOF_CACHE_SECONDS", "60")

# Logs: one JSON object per line in production (LOG_FORMAT=json), plain text in development;
# each line carries the id of the HTTP request or websocket frame that caused it (gaveurs/logs.py).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json" if PRODUCTION else "plain")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}")
# One access line per HTTP request (method, path, status, duration, request id).
LOG_REQUESTS = envbool("LOG_REQUESTS", "True")
# Take the request id from X-Request-ID: only when a proxy you run sets (or overwrites) it.
REQUEST_ID_TRUST_HEADER = envbool("REQUEST_ID_TRUST_HEADER", "False")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "gaveurs.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        "json": {"()": "gaveurs.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Operations: /health/live, /health/ready (gaveurs/health.py) and /metrics (gaveurs/metrics.py).
# /metrics answers to these addresses or networks, or to "Authorization: Bearer METRICS_TOKEN".
METRICS_ALLOWED_IPS = [
    a.strip()
    for a in os.environ.get("METRICS_ALLOWED_IPS", "" if PRODUCTION else "127.0.0.1,::1").split(",")
    if a.strip()
]
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_IPS must list addresses or networks, got {_network!r}"
        ) from None
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_QUERY_TIMEOUT_MS = envint("METRICS_QUERY_TIMEOUT_MS", "2000")
# django-prometheus's per-request HTTP metrics (counts and latencies by view and status). Off by
# default: its two middlewares cost about 100-150 us of CPU per request here (a fifth of a trivial
# view's), too much for the consumer pages' hot path; turn it on for Daphne (staff pages).
METRICS_HTTP = envbool("METRICS_HTTP", "False")
if METRICS_HTTP:
    MIDDLEWARE.insert(1, "django_prometheus.middleware.PrometheusBeforeMiddleware")
    MIDDLEWARE.append("django_prometheus.middleware.PrometheusAfterMiddleware")

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off in production (DJANGO_ENV=production)")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured("SECRET_KEY must be at least 50 random characters in production")
    if "ALLOWED_HOSTS" not in os.environ:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set in production (comma-separated)")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "True")
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Behind a TLS-terminating load balancer that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Optimizer (manage.py optimize_curves): data thresholds and the feasible feeding curves.
OPTIMIZER_MIN_REVIEWS = envint("OPTIMIZER_MIN_REVIEWS", "100")
# The model must cut the mean-rating baseline's CV error by at least this fraction.
OPTIMIZER_MIN_IMPROVEMENT = envfloat("OPTIMIZER_MIN_IMPROVEMENT", "0.02")
OPTIMIZER_CV_FOLDS = envint("OPTIMIZER_CV_FOLDS", "5")
OPTIMIZER_N_ESTIMATORS = envint("OPTIMIZER_N_ESTIMATORS", "120")
OPTIMIZER_MAX_TRAIN_ROWS = envint("OPTIMIZER_MAX_TRAIN_ROWS", "20000")
OPTIMIZER_RANDOM_SEED = envint("OPTIMIZER_RANDOM_SEED", "0")
OPTIMIZER_MIN_DAYS = envint("OPTIMIZER_MIN_DAYS", "9")
OPTIMIZER_MAX_DAYS = envint("OPTIMIZER_MAX_DAYS", "16")
OPTIMIZER_MAX_DAILY_STEP_G = envfloat("OPTIMIZER_MAX_DAILY_STEP_G", "90")
OPTIMIZER_MAX_DAILY_DOSE_G = envfloat("OPTIMIZER_MAX_DAILY_DOSE_G", "1000")
# A recommended curve stays within this relative RMS distance of a curve a real lot followed.
OPTIMIZER_MAX_CURVE_DISTANCE = envfloat("OPTIMIZER_MAX_CURVE_DISTANCE", "0.12")
OPTIMIZER_SEARCH_GENERATIONS = envint("OPTIMIZER_SEARCH_GENERATIONS", "40")
OPTIMIZER_SEARCH_POPULATION = envint("OPTIMIZER_SEARCH_POPULATION", "160")
OPTIMIZER_REPORT_DIR = Path(os.environ.get("OPTIMIZER_REPORT_DIR", MEDIA_ROOT / "optimizer"))
# Curve model: bootstrap refits behind each interval; trial curves proposed for the next lots
# and the share of those lots they get (0 trials: none).
OPTIMIZER_BOOTSTRAP = envint("OPTIMIZER_BOOTSTRAP", "30")
OPTIMIZER_TRIALS = envint("OPTIMIZER_TRIALS", "2")
OPTIMIZER_TRIAL_SHARE = envfloat("OPTIMIZER_TRIAL_SHARE", "0.2")

# Content Security Policy (django-csp) on every page but the staff ones listed below: scripts and
# styles only from our own static files (no inline script, style or handler, no eval: the
# scan page's WebCrypto check needs none), images from us or data: URIs, no plugins, no framing,
# forms posting only to us. JSON in <script type="application/json"> is data, not run, so allowed.
# Excluded: Swagger UI (/api/docs, from a CDN) and the admin (staff only, behind a login). The
# live dashboard (/sqal/live/) is under the policy: its script and styles are static files, and
# its websocket is same-origin ('self').
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "csp.middleware.CSPMiddleware",
)
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/admin/", "/api/docs"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'"],
        "script-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Request bodies: the largest legitimate one (an admin action over 1000 selected rows) is a few
# tens of KB and nothing uploads files; anything over this is refused before it is parsed (400,
# 413 in the JSON API). A reverse proxy in front should cap bodies too (client_max_body_size).
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", str(256 * 1024))
