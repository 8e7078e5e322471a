"""Nixflex settings: everything comes from the environment (django-environ).

DEBUG is off unless the environment turns it on (`make run` and `make test` do), and with
DEBUG off every secret must be set explicitly, or the process refuses to start with a
message naming it: a production start never runs on development secrets.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
_dotenv = BASE_DIR / ".env"
if _dotenv.exists():
    environ.Env.read_env(str(_dotenv))

DEBUG = env.bool("DEBUG", default=False)

# --- Secrets -------------------------------------------------------------------------
# Dev-only fallbacks; refused below when DEBUG is off.
_DEV_SECRETS = {
    "SECRET_KEY": "dev-insecure-secret-key-do-not-use-in-production",
    "API_KEY_PEPPER": "dev-insecure-api-key-pepper",
    # A Fernet key (urlsafe base64 of 32 bytes), public on purpose: development only.
    "FIELD_ENCRYPTION_KEYS": "ZGV2LWluc2VjdXJlLWZpZWxkLWtleS0wMDAwMDAwMDA=",
    "STREAM_TOKEN_SECRET": "dev-insecure-stream-token-secret",
}
_missing = [name for name in _DEV_SECRETS if not env.str(name, default="")]
if _missing and not DEBUG:
    raise ImproperlyConfigured(
        "DEBUG is off but these secrets are not set: "
        + ", ".join(_missing)
        + ". Set them in the environment (see README, 'Configuration'), or set DEBUG=true for"
        " development (make run and make test do)."
    )


def _secret(name: str) -> str:
    return env.str(name, default="") or _DEV_SECRETS[name]


SECRET_KEY = _secret("SECRET_KEY")
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
# HMAC pepper for API key secrets: a DB dump alone cannot verify or forge a key.
API_KEY_PEPPER = _secret("API_KEY_PEPPER")
# Twilio auth tokens at rest (nixflex.encryption): Fernet keys of their own, never derived
# from SECRET_KEY. The first key encrypts, all of them decrypt: rotate by prepending a new
# one and running `manage.py rotate_field_encryption`.
FIELD_ENCRYPTION_KEYS = [key.strip() for key in _secret("FIELD_ENCRYPTION_KEYS").split(",") if key.strip()]
for _position, _key in enumerate(FIELD_ENCRYPTION_KEYS, 1):
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS: key #{_position} is not a Fernet key (urlsafe base64 of 32 bytes). Generate one: "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'. "
            "The value it had before Nixflex used Fernet keys goes in FIELD_ENCRYPTION_LEGACY_SALTS."
        ) from None
# Read once, by the data migration that re-encrypts values written before the keys above
# existed (django-fernet-encrypted-fields derived keys from SECRET_KEY with these salts):
# the old FIELD_ENCRYPTION_KEYS value. Not needed on a database created after it.
FIELD_ENCRYPTION_LEGACY_SALTS = env.list(
    "FIELD_ENCRYPTION_LEGACY_SALTS", default=["dev-insecure-field-key"] if DEBUG else []
)
# Signs the short-lived media-stream tokens handed to Twilio in TwiML.
STREAM_TOKEN_SECRET = _secret("STREAM_TOKEN_SECRET")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DEBUG is off: set ALLOWED_HOSTS (comma-separated).")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The https origin Twilio reaches: webhook and wss:// URLs are built from it, and
# Twilio signatures are checked against it (never against the request's Host).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://localhost:8000").rstrip("/")
# Hosts that serve the public schema (API, admin, Twilio webhooks) rather than a tenant.
API_HOSTS = env.list("API_HOSTS", default=["localhost", "127.0.0.1", "api.localhost", "testserver"])
DOCS_BASE_URL = env.str("DOCS_BASE_URL", default="https://docs.nixflex.com").rstrip("/")

# --- Providers (reached only through their SDKs; base URLs point at stand-ins in tests) --
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="https://api.twilio.com").rstrip("/")
TWILIO_TIMEOUT_SECONDS = env.float("TWILIO_TIMEOUT_SECONDS", default=10.0)
DEEPGRAM_API_KEY = env.str("DEEPGRAM_API_KEY", default="")
DEEPGRAM_BASE_URL = env.str("DEEPGRAM_BASE_URL", default="https://api.deepgram.com").rstrip("/")
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="https://api.anthropic.com").rstrip("/")
ANTHROPIC_MAX_RETRIES = env.int("ANTHROPIC_MAX_RETRIES", default=2)
DEFAULT_CLAUDE_MODEL = env.str("DEFAULT_CLAUDE_MODEL", default="claude-sonnet-4-6")
# Mid-call: a turn whose first token has not come in this long gets a fallback line.
LLM_FIRST_TOKEN_TIMEOUT_SECONDS = env.float("LLM_FIRST_TOKEN_TIMEOUT_SECONDS", default=4.0)
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=15.0)
# Deepgram's standard plans cap concurrent streams (~15 TTS): a platform-wide limit.
PLATFORM_MAX_CONCURRENT_CALLS = env.int("PLATFORM_MAX_CONCURRENT_CALLS", default=15)
# At most this fraction of the platform pool (the limit above, or the web processes'
# advertised capacity if smaller) goes to one account, whatever its plan allows.
PLATFORM_ACCOUNT_SHARE = env.float("PLATFORM_ACCOUNT_SHARE", default=0.5)
# Calls one web process serves without degrading: the largest level bench/voice_engine.py
# measured with no failed call, no underrun and overhead p99 <= 50 ms on one core (50 on
# 2026-12-02; 100 had 4 underruns). Each process advertises it; admission refuses beyond the sum.
PROCESS_CALL_CAPACITY = env.int("PROCESS_CALL_CAPACITY", default=50)
CALL_LEASE_PREFIX = env.str("CALL_LEASE_PREFIX", default="nixflex:calls")
# A call's slot: short from the voice webhook until its media stream starts (a call that
# never streams frees it quickly), then long, renewed by the process serving the call.
# The live lease outlasts two missed renewals, so a Redis blip drops no call.
CALL_ADMISSION_LEASE_SECONDS = env.float("CALL_ADMISSION_LEASE_SECONDS", default=30.0)
CALL_LIVE_LEASE_SECONDS = env.float("CALL_LIVE_LEASE_SECONDS", default=90.0)
CALL_LEASE_RENEW_SECONDS = env.float("CALL_LEASE_RENEW_SECONDS", default=30.0)
CALL_LEASE_REDIS_TIMEOUT_SECONDS = env.float("CALL_LEASE_REDIS_TIMEOUT_SECONDS", default=1.0)
# Claude's system prompt after placeholders are filled: customer values and caller
# history are cut to fit, never the agent's own instructions.
MAX_SYSTEM_PROMPT_CHARS = env.int("MAX_SYSTEM_PROMPT_CHARS", default=20_000)
# Twilio connects the media stream within a second or two of our TwiML.
STREAM_TOKEN_MAX_AGE_SECONDS = env.int("STREAM_TOKEN_MAX_AGE_SECONDS", default=120)
# A media socket that has not sent `start` by then is closed (Twilio sends it at once).
MEDIA_STREAM_START_TIMEOUT_SECONDS = env.float("MEDIA_STREAM_START_TIMEOUT_SECONDS", default=5.0)
if not DEBUG:
    for _name in ("DEEPGRAM_API_KEY", "ANTHROPIC_API_KEY"):
        if not globals()[_name]:
            raise ImproperlyConfigured(f"DEBUG is off: {_name} must be set for live calls.")

# --- Apps (django-tenants: shared = public schema, tenant = one schema per account) ---
SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "agents",
    "customers",
    "telephony",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Account"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "nixflex.urls_public"
ROOT_URLCONF = "nixflex.urls_tenant"
# New accounts clone this prepared schema instead of running every migration.
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True

MIDDLEWARE = [
    # Outermost: every answer under /v1/ (even the tenant middleware's) gets the envelope;
    # then hostile input is refused before anything reads the database.
    "nixflex.middleware.ApiErrorEnvelopeMiddleware",
    "nixflex.middleware.RequestGuardMiddleware",
    "nixflex.middleware.TenantByHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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
            ],
        },
    },
]

WSGI_APPLICATION = "nixflex.asgi.django_http_app"
ASGI_APPLICATION = "nixflex.asgi.application"

# --- Data stores -----------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/nixflex"),
}
DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
# Persistent connections (per worker thread), checked before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Keys carry the schema so one account never reads another's cache entry.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 defaults socket_timeout to 5 s, the same as channels-redis' blocking
        # pop: an idle consumer's read would time out and kill it. Give reads more room.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
            "prefix": env.str("CHANNEL_LAYER_PREFIX", default="nixflex"),
        },
    }
}

# --- Celery (tenant-schemas-celery carries the schema in every task) --------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="nixflex")
# A running job whose lock is free and that has not moved for this long has lost its
# worker and is queued again (once; it fails after JOB_MAX_ATTEMPTS runs).
JOB_STALL_SECONDS = env.int("JOB_STALL_SECONDS", default=30)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
# A job that crashed waits this long (times its attempts) before it runs again.
JOB_RETRY_DELAY_SECONDS = env.float("JOB_RETRY_DELAY_SECONDS", default=10.0)
# Jobs one account runs at once; the rest wait in the database, so one account's backlog
# never sits in the broker ahead of other accounts' jobs. Keep it below the workers'
# total concurrency so that other accounts' jobs always find a free worker.
JOB_MAX_ACTIVE_PER_ACCOUNT = env.int("JOB_MAX_ACTIVE_PER_ACCOUNT", default=2)
# A job whose task was sent this long ago and never started: the message was lost (a
# broker restarted without persistence) and it is sent again.
JOB_DISPATCH_TIMEOUT_SECONDS = env.int("JOB_DISPATCH_TIMEOUT_SECONDS", default=600)
# Post-call summaries: retries after a Claude failure (delay doubles each time), then `failed`.
SUMMARY_MAX_RETRIES = env.int("SUMMARY_MAX_RETRIES", default=3)
SUMMARY_RETRY_DELAY_SECONDS = env.float("SUMMARY_RETRY_DELAY_SECONDS", default=5.0)
JOB_RESUME_INTERVAL_SECONDS = env.float("JOB_RESUME_INTERVAL_SECONDS", default=30.0)
CELERY_BEAT_SCHEDULE = {
    # A pass that waited past the next one is dropped, so busy workers never face a pile of them.
    "resume-stalled-jobs": {
        "task": "telephony.resume_stalled_jobs",
        "schedule": JOB_RESUME_INTERVAL_SECONDS,
        "options": {"expires": JOB_RESUME_INTERVAL_SECONDS},
    },
    "check-number-webhooks": {
        "task": "telephony.check_all_webhooks",
        "schedule": env.float("WEBHOOK_CHECK_INTERVAL_SECONDS", default=6 * 3600.0),
    },
}
# Bulk imports: rows in flight per job, and per Twilio account (Twilio's API concurrency).
BULK_WORKERS = env.int("BULK_WORKERS", default=32)
BULK_PER_TWILIO_ACCOUNT = env.int("BULK_PER_TWILIO_ACCOUNT", default=16)

# --- REST API --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.throttling.TokenBucketThrottle"],
    "DEFAULT_PARSER_CLASSES": ["nixflex.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "nixflex.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "nixflex.openapi.ApiSchema",
    "UNAUTHENTICATED_USER": None,
}
# Hostile input: bodies over this size are refused unread (the largest real one, a bulk
# import of 1000 numbers, is a few hundred KB); JSON deeper than this is refused.
MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=2 * 1024 * 1024)
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=32)
# Rate limiter: Redis calls give up after this long; after a failure, per-process buckets
# decide for this long before Redis is tried again.
RATE_LIMIT_REDIS_TIMEOUT_SECONDS = env.float("RATE_LIMIT_REDIS_TIMEOUT_SECONDS", default=0.5)
RATE_LIMIT_REDIS_RETRY_SECONDS = env.float("RATE_LIMIT_REDIS_RETRY_SECONDS", default=1.0)
# Default plan: sustained requests per second and burst, per API key and per account.
DEFAULT_API_RATE_PER_SECOND = env.int("DEFAULT_API_RATE_PER_SECOND", default=20)
DEFAULT_API_BURST = env.int("DEFAULT_API_BURST", default=40)

SPECTACULAR_SETTINGS = {
    "TITLE": "Nixflex API",
    "DESCRIPTION": "Phone voice agents on your own Twilio numbers.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/v1",
    # Enum components named after what they are (fields called `status` or `type` recur).
    "ENUM_NAME_OVERRIDES": {
        "ErrorType": "nixflex.openapi.ERROR_TYPES",
        "ErrorCode": "nixflex.openapi.ERROR_CODE_NAMES",
        "CallStatus": "telephony.serializers.CALL_STATUSES",
        "CallDirection": "telephony.serializers.CALL_DIRECTIONS",
        "CallSummaryStatus": "telephony.serializers.SUMMARY_STATUSES",
        "JobStatus": "telephony.models.Job.Status",
        "JobRowStatus": "telephony.models.JobRow.Status",
    },
}

# --- Misc ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
LOGIN_URL = "/login/"
SESSION_COOKIE_NAME = "nixflex_session"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # 4xx answers are the API working as designed; the envelope tells the caller.
        "django.request": {"level": "ERROR"},
        # One line per provider request is noise at INFO; failures are logged by the adapters.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}

# deepgram's listen modules warn at import; twilio's async client warns via aiohttp.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"deepgram\..*")
