"""Test settings: the project's settings, pointed at a database and queue of their own."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nixflex_test")
os.environ.setdefault("CELERY_QUEUE", f"nixflex-test-{os.getpid()}")
os.environ.setdefault("CHANNEL_LAYER_PREFIX", f"nixflex-test-{os.getpid()}")
os.environ.setdefault("PUBLIC_BASE_URL", "https://voice.example.test")
os.environ.setdefault("DEEPGRAM_API_KEY", "dg-test-key")
os.environ.setdefault("ANTHROPIC_API_KEY", "anthropic-test-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Workers started by tests resume a job whose worker died within a couple of seconds.
os.environ.setdefault("JOB_STALL_SECONDS", "2")
os.environ.setdefault("JOB_RESUME_INTERVAL_SECONDS", "1")

from nixflex.settings import *  # noqa: E402,F401,F403
from nixflex.settings import DATABASES  # noqa: E402

# The suite drops and recreates its database: never let it be the real one.
if not DATABASES["default"]["NAME"].endswith("_test"):
    DATABASES["default"]["NAME"] += "_test"

# Adds routes that fail on purpose, to test the envelope of a 500.
PUBLIC_SCHEMA_URLCONF = "tests.urls_public"
