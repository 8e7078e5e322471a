"""Test settings: the project's settings, pointed at a database and queue of their own."""

import os

# One id per test run, inherited by the servers and workers the run starts, so that
# concurrent runs on one machine never share a database, queue or key prefix.
os.environ.setdefault("NIXFLEX_TEST_RUN", str(os.getpid()))
RUN = os.environ["NIXFLEX_TEST_RUN"]
# Development defaults (DEBUG on, so settings.py accepts its development secrets): the
# project's settings default to production.
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nixflex_test")
os.environ.setdefault("CELERY_QUEUE", f"nixflex-test-{RUN}")
os.environ.setdefault("CHANNEL_LAYER_PREFIX", f"nixflex-test-{RUN}")
os.environ.setdefault("PUBLIC_BASE_URL", "https://voice.example.test")
os.environ.setdefault("DEEPGRAM_API_KEY", "dg-test-key")
os.environ.setdefault("ANTHROPIC_API_KEY", "anthropic-test-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("CALL_LEASE_PREFIX", f"nixflex-test-{RUN}:calls")
# Workers started by tests resume a job whose worker died within a couple of seconds.
os.environ.setdefault("JOB_STALL_SECONDS", "2")
os.environ.setdefault("JOB_RESUME_INTERVAL_SECONDS", "1")
# A crashed job runs again at once, and summaries retry quickly, so failure tests are short.
os.environ.setdefault("JOB_RETRY_DELAY_SECONDS", "0")
os.environ.setdefault("SUMMARY_RETRY_DELAY_SECONDS", "0.2")

from nixflex.settings import *  # noqa: E402, F403
from nixflex.settings import DATABASES  # noqa: E402

# The suite drops and recreates its database: never the real one, never another run's.
_name = DATABASES["default"]["NAME"]
if not _name.endswith("_test"):
    _name += "_test"
DATABASES["default"]["NAME"] = f"{_name}_{RUN}"

# Adds routes that fail on purpose, to test the envelope of a 500.
PUBLIC_SCHEMA_URLCONF = "tests.urls_public"
