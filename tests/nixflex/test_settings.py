"""Configuration: loud when wrong."""

import subprocess
import sys

from tests.conftest import ROOT


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "nixflex.settings", **env})


def test_debug_off_without_secrets_refuses_to_start_naming_them() -> None:
    result = _start({"DEBUG": "false", "ALLOWED_HOSTS": "api.example.com"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "API_KEY_PEPPER" in result.stderr
    assert "FIELD_ENCRYPTION_KEYS" in result.stderr


def test_debug_off_with_everything_set_starts() -> None:
    secrets = {name: f"test-{name}" for name in ("SECRET_KEY", "API_KEY_PEPPER", "FIELD_ENCRYPTION_KEYS",
                                                 "STREAM_TOKEN_SECRET", "DEEPGRAM_API_KEY", "ANTHROPIC_API_KEY")}
    result = _start({"DEBUG": "false", "ALLOWED_HOSTS": "api.example.com", **secrets})
    assert result.returncode == 0, result.stderr


def test_development_defaults_work_out_of_the_box() -> None:
    assert _start({}).returncode == 0
