"""Shared set-up for benchmarks: a database of their own, Django, and a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nixflex_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nixflex.settings")
# Production-like: DEBUG off (no query logging), with throwaway secrets.
os.environ.setdefault("DEBUG", "false")
for _name in ("SECRET_KEY", "API_KEY_PEPPER", "STREAM_TOKEN_SECRET", "DEEPGRAM_API_KEY", "ANTHROPIC_API_KEY"):
    os.environ.setdefault(_name, f"bench-{_name.lower()}")
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "YmVuY2gtZmllbGQtZW5jcnlwdGlvbi1rZXktMDAwMDA=")  # a Fernet key
os.environ.setdefault("ALLOWED_HOSTS", "*")
os.environ.setdefault("DB_CONN_MAX_AGE", "60")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("CELERY_QUEUE", f"nixflex-bench-{os.getpid()}")


def setup_django() -> None:
    _recreate_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate_all", verbosity=0)


def _recreate_database(url: str) -> None:
    """Each run starts from an empty database: figures must not depend on earlier runs."""
    import psycopg

    dbname = url.rsplit("/", 1)[-1]
    assert "bench" in dbname, f"refusing to recreate {dbname!r}"
    admin = url[: len(url) - len(dbname)] + "postgres"
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, **(extra_env or {})}
    profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    # The server gets core 0 to itself (the target is per process, one core); load
    # generators and stand-ins run on the other cores (see pin_to_other_cores).
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) > 1 and _has_taskset() else []
    # The child keeps its own copy of the log file descriptor.
    with open("/tmp/nixflex-bench-server.log", "w") as log:
        proc = subprocess.Popen(
            [
                *pin,
                sys.executable,
                *profile,
                "-m",
                "uvicorn",
                "nixflex.asgi:application",
                "--http",
                "nixflex.uvicorn_protocol:HttpProtocol",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
                *os.environ.get("BENCH_UVICORN_ARGS", "").split(),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                _start_py_spy(proc.pid)
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def _start_py_spy(pid: int) -> None:
    """BENCH_PYSPY=out.txt: sample the server with py-spy (collapsed stacks) while it runs."""
    out = os.environ.get("BENCH_PYSPY")
    if out:
        spy = Path(sys.executable).with_name("py-spy")
        subprocess.Popen(
            [str(spy), "record", "--pid", str(pid), "--nonblocking", "-r", "250", "-f", "raw", "-o", out],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _has_taskset() -> bool:
    import shutil

    return shutil.which("taskset") is not None


def pin_to_other_cores() -> None:
    """Keep this process (and children it starts later) off the server's core."""
    cores = os.sched_getaffinity(0) - {0}
    if cores:
        os.sched_setaffinity(0, cores)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
