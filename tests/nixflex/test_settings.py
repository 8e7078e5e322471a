"""Configuration: loud when wrong."""

import subprocess
import sys

from cryptography.fernet import Fernet

from tests.conftest import ROOT


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "nixflex.settings", **env},
    )


def test_debug_off_without_secrets_refuses_to_start_naming_them() -> None:
    result = _start({"DEBUG": "false", "ALLOWED_HOSTS": "api.example.com"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "API_KEY_PEPPER" in result.stderr
    assert "FIELD_ENCRYPTION_KEYS" in result.stderr


def _production_secrets() -> dict[str, str]:
    secrets = {
        name: f"test-{name}"
        for name in ("SECRET_KEY", "API_KEY_PEPPER", "STREAM_TOKEN_SECRET", "DEEPGRAM_API_KEY", "ANTHROPIC_API_KEY")
    }
    return {**secrets, "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}


def test_debug_off_with_everything_set_starts() -> None:
    result = _start({"DEBUG": "false", "ALLOWED_HOSTS": "api.example.com", **_production_secrets()})
    assert result.returncode == 0, result.stderr


def test_debug_is_off_unless_the_environment_turns_it_on() -> None:
    secrets = _production_secrets()
    check = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "nixflex.settings",
            "ALLOWED_HOSTS": "api.example.com",
            **secrets,
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_production_start_without_secrets_refuses_to_run() -> None:
    """No DEBUG in the environment is production: the development secrets are never used."""
    result = _start({})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "API_KEY_PEPPER" in result.stderr
    assert "DEBUG=true" in result.stderr  # says how to get the development defaults
    # The real entry point too (uvicorn and Celery load the same settings on import).
    managed = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        check=False,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert managed.returncode != 0
    assert "DEBUG is off but these secrets are not set" in managed.stderr


def test_development_defaults_come_with_debug_on() -> None:
    """What make run and make test set (scripts/run.sh, scripts/test.sh, tests/settings.py)."""
    assert _start({"DEBUG": "true"}).returncode == 0


def test_field_encryption_keys_must_be_fernet_keys() -> None:
    """The old scheme took any string (and derived keys from SECRET_KEY): a value of that
    kind is refused at start, saying where it belongs now."""
    for keys in ("dev-insecure-field-key", f"{Fernet.generate_key().decode()},not-a-key"):
        result = _start(
            {
                "DEBUG": "false",
                "ALLOWED_HOSTS": "api.example.com",
                **_production_secrets(),
                "FIELD_ENCRYPTION_KEYS": keys,
            }
        )
        assert result.returncode != 0
        assert "FIELD_ENCRYPTION_KEYS" in result.stderr and "FIELD_ENCRYPTION_LEGACY_SALTS" in result.stderr
        assert "not-a-key" not in result.stderr and "dev-insecure-field-key" not in result.stderr
