"""Settings, read from the environment. `.env.example` documents every variable."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url

from config.env import (
    ConfigError,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_str,
    env_timezone,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        if len(key) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters long")
        return key
    if not DEBUG:
        raise ConfigError(
            "SECRET_KEY is required when DEBUG is false (production). "
            "Set DEBUG=true for development, where a key is generated into var/."
        )
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "axes",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "accounts",
    "customers",
    "segments",
    "campaigns",
    "destinations",
    "notifications",
    "deliveries",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
            ],
            "builtins": ["accounts.templatetags.when"],
        },
    },
]

_default_db = f"sqlite:///{VAR_DIR / 'app.sqlite3'}"
try:
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL", _default_db), conn_max_age=env_int("DB_CONN_MAX_AGE", 60)
        )
    }
except ValueError as exc:
    raise ConfigError(f"DATABASE_URL is not a database URL this app understands: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the worker write while the web server reads; the timeout rides out short locks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests use a file too, not SQLite's in-memory default: the live server's threads then get a
    # connection each, as in production, instead of sharing one (which can deadlock SQLite).
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
# A persistent connection the database dropped (restart, failover) is replaced, not used.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

# Sign-in throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one username
# from one address, that pair is locked out for LOGIN_LOCKOUT_MINUTES. Locking the pair, not
# the username alone, keeps a stranger from locking a colleague out from elsewhere.
AUTHENTICATION_BACKENDS = [
    "accounts.throttle.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.throttle.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # failed attempts are kept; successful sign-ins are not logged
AXES_VERBOSE = False  # no start-up banner in every command's output
# Reverse proxies in front of the app that append to X-Forwarded-For: 0 uses the connection's
# address; behind one proxy (docker compose behind nginx, say) set 1.
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_address"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_timezone("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"
FILE_UPLOAD_TEMP_DIR = None
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
_secure_cookies = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _secure_cookies)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _secure_cookies)

# HTTPS. Behind a TLS-terminating proxy, name the header it sets to "https" on secure
# requests (e.g. X-Forwarded-Proto) so redirects and the OAuth callback URL are https. Only
# set it when the proxy always sets or overwrites that header: a client could send it too.
_proxy_ssl_header = env_str("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header:
    if not re.fullmatch(r"[A-Za-z0-9-_]+", _proxy_ssl_header):
        raise ConfigError(
            "SECURE_PROXY_SSL_HEADER must be a header name such as X-Forwarded-Proto, "
            f"got {_proxy_ssl_header!r}"
        )
    _meta_name = _proxy_ssl_header.upper().replace("-", "_")
    if not _meta_name.startswith("HTTP_"):
        _meta_name = f"HTTP_{_meta_name}"
    SECURE_PROXY_SSL_HEADER = (_meta_name, "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = env_bool("SECURE_CONTENT_TYPE_NOSNIFF", True)
X_FRAME_OPTIONS = env_choice("X_FRAME_OPTIONS", "DENY", {"DENY", "SAMEORIGIN"})
SECURE_REFERRER_POLICY = env_choice(
    "SECURE_REFERRER_POLICY",
    "same-origin",
    {
        "no-referrer",
        "no-referrer-when-downgrade",
        "origin",
        "origin-when-cross-origin",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    },
)

# Email: notifications go out through these. Development writes messages to var/mail.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "audiences@localhost")

# Celery. With no broker URL set, kombu's filesystem transport under var/ lets the
# embedded default run real worker processes without a broker server.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    _processed_dir = VAR_DIR / "celery" / "processed"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    _processed_dir.mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery" / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
    # kombu warns "No hostname was supplied" on every connection to a URL without one.
    CELERY_BROKER_URL = "filesystem://localhost/"
elif not CELERY_BROKER_URL.startswith(("redis://", "rediss://", "amqp://")):
    raise ConfigError(
        f"CELERY_BROKER_URL must start with redis://, rediss://, amqp:// or filesystem://, "
        f"got {CELERY_BROKER_URL!r}"
    )
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}
CELERY_BEAT_SCHEDULE["destinations-check-tokens"] = {
    "task": "destinations.tasks.check_destination_tokens",
    "schedule": env_int("TIKTOK_TOKEN_CHECK_SECONDS", 1800, minimum=60),
}

# Deliveries: the scheduler tick finds due campaigns, re-enqueues stalled deliveries and
# resumes those waiting for a reauthorized destination; the poll checks TikTok's matching.
DELIVERY_QUEUE = env_str("DELIVERY_QUEUE", "celery")
DELIVERY_SCHEDULER_SECONDS = env_int("DELIVERY_SCHEDULER_SECONDS", 10, minimum=1)
DELIVERY_POLL_SECONDS = env_int("DELIVERY_POLL_SECONDS", 30, minimum=1)
DELIVERY_STALE_SECONDS = env_int("DELIVERY_STALE_SECONDS", 120, minimum=1)
DELIVERY_MAX_ATTEMPTS = env_int("DELIVERY_MAX_ATTEMPTS", 8, minimum=1)
DELIVERY_BACKOFF_BASE_SECONDS = env_int("DELIVERY_BACKOFF_BASE_MS", 500, minimum=1) / 1000
DELIVERY_BACKOFF_MAX_SECONDS = env_int("DELIVERY_BACKOFF_MAX_SECONDS", 30, minimum=1)
DELIVERY_RATE_LIMIT_PATIENCE_SECONDS = env_int("DELIVERY_RATE_LIMIT_PATIENCE_S", 600, minimum=1)
DELIVERY_POLL_HOURS = env_int("DELIVERY_POLL_HOURS", 72, minimum=1)
CELERY_BEAT_SCHEDULE["segments-delete-old-sql-results"] = {
    "task": "segments.tasks.delete_old_sql_results",
    "schedule": 3600,
}
CELERY_BEAT_SCHEDULE["deliveries-schedule"] = {
    "task": "deliveries.tasks.schedule_deliveries",
    "schedule": DELIVERY_SCHEDULER_SECONDS,
}
CELERY_BEAT_SCHEDULE["deliveries-poll-audiences"] = {
    "task": "deliveries.tasks.poll_audiences",
    "schedule": DELIVERY_POLL_SECONDS,
}

# Token encryption (destinations). Comma-separated Fernet keys, newest first; see README.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", [])
if not FIELD_ENCRYPTION_KEYS:
    if not DEBUG:
        raise ConfigError(
            "FIELD_ENCRYPTION_KEYS is required when DEBUG is false (production). Generate one "
            "with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    _field_key_path = VAR_DIR / "field_encryption_key"
    if not _field_key_path.exists():
        from cryptography.fernet import Fernet

        _field_key_path.write_text(Fernet.generate_key().decode())
        _field_key_path.chmod(0o600)
    FIELD_ENCRYPTION_KEYS = [_field_key_path.read_text().strip()]

# TikTok. `make run` points these at the local sandbox.
TIKTOK_APP_ID = env_str("TIKTOK_APP_ID")
TIKTOK_APP_SECRET = env_str("TIKTOK_APP_SECRET")
TIKTOK_API_BASE_URL = env_str(
    "TIKTOK_API_BASE_URL", "https://business-api.tiktok.com/open_api/v1.3/"
)
TIKTOK_AUTH_URL = env_str("TIKTOK_AUTH_URL", "https://business-api.tiktok.com/portal/auth")
TIKTOK_BATCH_SIZE = env_int("TIKTOK_BATCH_SIZE", 10_000, minimum=1)
TIKTOK_HTTP_TIMEOUT = env_int("TIKTOK_HTTP_TIMEOUT", 30, minimum=1)
# The OAuth callback URL as registered with TikTok. Empty: built from the request (https
# behind a proxy once SECURE_PROXY_SSL_HEADER is set).
TIKTOK_REDIRECT_URI = env_str("TIKTOK_REDIRECT_URI")
if TIKTOK_REDIRECT_URI:
    _redirect = urlsplit(TIKTOK_REDIRECT_URI)
    if _redirect.scheme not in ("https", "http") or not _redirect.netloc:
        raise ConfigError(
            "TIKTOK_REDIRECT_URI must be an absolute URL such as https://audiences.example.com"
            f"/destinations/tiktok/callback/, got {TIKTOK_REDIRECT_URI!r}"
        )
    if _redirect.scheme != "https" and not DEBUG:
        raise ConfigError("TIKTOK_REDIRECT_URI must start with https:// in production")

# Phones without a country are parsed with this region (ISO 3166 alpha-2).
DEFAULT_PHONE_REGION = env_str("DEFAULT_PHONE_REGION", "US").upper()
if len(DEFAULT_PHONE_REGION) != 2 or not DEFAULT_PHONE_REGION.isalpha():
    raise ConfigError(
        f"DEFAULT_PHONE_REGION must be a two-letter country code, got {DEFAULT_PHONE_REGION!r}"
    )

# Segments: statement timeout for counts, insights and SQL segments (read-only transactions).
SEGMENT_QUERY_TIMEOUT_MS = env_int("SEGMENT_QUERY_TIMEOUT_MS", 30_000, minimum=100)
# Live previews (the editor's insights): a short timeout, one running query per person.
SEGMENT_LIVE_TIMEOUT_MS = env_int("SEGMENT_LIVE_TIMEOUT_MS", 5_000, minimum=100)
# SQL segments run as their own PostgreSQL login that can only read the customer store
# (segments.fence; `manage.py segment_role` creates it). Ignored on SQLite.
SEGMENT_DB_USER = env_str("SEGMENT_DB_USER", "segment_reader")
SEGMENT_DB_PASSWORD = env_str("SEGMENT_DB_PASSWORD")
# Pages reuse an evaluation of the same SQL segment this long; deliveries always run it again.
SEGMENT_SQL_REUSE_SECONDS = env_int("SEGMENT_SQL_REUSE_SECONDS", 30, minimum=0)

# CSV import: processes that validate and normalize rows of big files (0 = in-process).
IMPORT_WORKERS = env_int("IMPORT_WORKERS", min(os.cpu_count() or 1, 4), minimum=0)
# Heartbeat age after which the watchdog says a running import lost its worker.
IMPORT_STALE_SECONDS = env_int("IMPORT_STALE_SECONDS", 300, minimum=5)
CELERY_BEAT_SCHEDULE["customers-import-watchdog"] = {
    "task": "customers.tasks.watch_import_jobs",
    "schedule": DELIVERY_SCHEDULER_SECONDS,
}

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {
        "client_errors": {"()": "config.log_filters.ClientErrorWithoutTraceback"},
        "no_query": {"()": "config.log_filters.RequestLineWithoutQuery"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Django's own handlers (a second console in DEBUG, mail to ADMINS) give way to the
        # root's, so every record passes the same filters.
        "django": {"handlers": [], "propagate": True},
        "django.server": {"handlers": [], "propagate": True, "filters": ["no_query"]},
    },
}
