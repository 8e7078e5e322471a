"""Configuration: loud when wrong."""

import subprocess
import sys

from cryptography.fernet import Fernet

from tests.conftest import ROOT


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "nixflex.settings", **env})


def test_debug_off_without_secrets_refuses_to_start_naming_them() -> None:
    result = _start({"DEBUG": "false", "ALLOWED_HOSTS": "api.example.com"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "API_KEY_PEPPER" in result.stderr
    assert "FIELD_ENCRYPTION_KEYS" in result.stderr


def _production_secrets() -> dict[str, str]:
    secrets = {name: f"test-{name}" for name in ("SECRET_KEY", "API_KEY_PEPPER", "STREAM_TOKEN_SECRET",
                                                 "DEEPGRAM_API_KEY", "ANTHROPIC_API_KEY")}
    return {**secrets, "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode()}


def test_debug_off_with_everything_set_starts() -> None:
    result = _start({"DEBUG": "false", "ALLOWED_HOSTS": "api.example.com", **_production_secrets()})
    assert result.returncode == 0, result.stderr


def test_field_encryption_keys_must_be_fernet_keys() -> None:
    """The old scheme took any string (and derived keys from SECRET_KEY): a value of that
    kind is refused at start, saying where it belongs now."""
    for keys in ("dev-insecure-field-key", f"{Fernet.generate_key().decode()},not-a-key"):
        result = _start({"DEBUG": "false", "ALLOWED_HOSTS": "api.example.com",
                         **_production_secrets(), "FIELD_ENCRYPTION_KEYS": keys})
        assert result.returncode != 0
        assert "FIELD_ENCRYPTION_KEYS" in result.stderr and "FIELD_ENCRYPTION_LEGACY_SALTS" in result.stderr
        assert "not-a-key" not in result.stderr and "dev-insecure-field-key" not in result.stderr


def test_development_defaults_work_out_of_the_box() -> None:
    assert _start({}).returncode == 0
