"""Running the set-up scripts as a new user would: a clean environment, real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT


def free_port() -> int:
    """A port nothing listens on (nothing will: the socket that held it is closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def fresh_shell_env(**extra: str) -> dict[str, str]:
    """What a developer's shell has: no project settings from this test session (its
    database, stand-ins, queue and settings module must not leak into the script)."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TERM", "TMPDIR") if name in os.environ}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **extra}


def processes_with_env(name: str, value: str) -> list[int]:
    """Pids of live processes whose environment has name=value (what a script left behind)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_session(proc: subprocess.Popen) -> None:
    """Last resort after a failed test: the script's session (started with start_new_session)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_until(predicate: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())
