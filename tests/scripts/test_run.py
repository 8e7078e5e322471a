"""`make run` as a new user meets it: started on a machine that never ran it, killed outright,
started again on the same machine (the leftovers stopped; the stand-ins start empty while the
database keeps the demo), the demo called, stopped with Ctrl-C; and a port in use (not ours)
refused with a clear message."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
import redis
import requests

from telephony.models import PhoneNumber
from tests.conftest import ROOT, _admin_dsn
from tests.scripts.conftest import free_port, fresh_shell_env, kill_session, listening, processes_with_env, wait_until

DEMO_NUMBER = "+442011110001"
READY = "Press Ctrl-C to stop."


@dataclass
class Running:
    proc: subprocess.Popen
    log: Path
    output: str

    def printed(self, label: str) -> str:
        match = re.search(rf"^\s*{re.escape(label)}\s+(.+)$", self.output, re.MULTILINE)
        assert match, f"{label!r} not printed:\n{self.output}"
        return match.group(1).strip()

    @property
    def pages(self) -> list[str]:
        """Printed URLs of pages to open (not the base URLs given to commands as --server/--twilio)."""
        found = re.findall(r"(--\w+\s+)?(https?://[^\s)\"',]+)", self.output.split("Nixflex is running.", 1)[1])
        return [url for option, url in found if not option]


def _start(env: dict[str, str], log: Path, timeout: float = 300) -> Running:
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    ok = wait_until(lambda: READY in log.read_text() or proc.poll() is not None, timeout)
    output = log.read_text()
    if not ok or READY not in output:
        kill_session(proc)
        pytest.fail(f"make run did not come up (exit {proc.poll()}):\n{output}")
    return Running(proc=proc, log=log, output=output)


def _stop_with_ctrl_c(run: Running, data_dir: Path, ports: list[int]) -> None:
    """Ctrl-C reaches the script's foreground process group, as in a terminal."""
    os.killpg(run.proc.pid, signal.SIGINT)
    try:
        assert run.proc.wait(timeout=60) == 0, run.log.read_text()
    finally:
        kill_session(run.proc)
    assert "Stopped." in run.log.read_text()
    assert [port for port in ports if listening(port)] == []
    # Nothing it started is left running (stand-ins, web server, Celery worker and its pool).
    assert wait_until(lambda: not processes_with_env("NIXFLEX_DATA_DIR", str(data_dir)), timeout=5), processes_with_env(
        "NIXFLEX_DATA_DIR", str(data_dir)
    )


def _check_demo(run: Running, port: int) -> tuple[str, list[int]]:
    """The printed key works, the printed URLs exist, the demo number answers calls' webhooks
    here. Returns the Twilio stand-in's URL and every port the run listens on."""
    key = run.printed("Demo API key")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {key}"
    pages = [urlparse(url) for url in run.pages]
    assert len([page for page in pages if page.port == port]) >= 3, run.output  # docs, schema, the curl example
    for page in pages:
        if page.port == port:  # asked of 127.0.0.1 with the printed host (*.localhost may not resolve here)
            response = api.get(f"http://127.0.0.1:{port}{page.path}", headers={"Host": page.netloc}, timeout=30)
            assert response.status_code == 200, page.geturl()
    agents = api.get(f"http://127.0.0.1:{port}/v1/agents", timeout=30)
    assert agents.status_code == 200
    assert run.printed("Demo agent") in [agent["id"] for agent in agents.json()["data"]]
    number = api.get(f"http://127.0.0.1:{port}/v1/phone-numbers/{DEMO_NUMBER}", timeout=30)
    assert number.status_code == 200, number.text
    assert number.json()["agent_id"] == run.printed("Demo agent")
    assert number.json()["webhook_status"] == PhoneNumber.WEBHOOKS_OK
    providers = re.findall(r"http://127\.0\.0\.1:\d+", run.printed("Providers"))
    assert len(providers) == 3
    twilio = providers[0]
    at_twilio = {n["phone_number"]: n for n in requests.get(f"{twilio}/_standin/numbers", timeout=10).json()}
    assert at_twilio[DEMO_NUMBER]["voice_url"] == f"http://localhost:{port}/twilio/voice"
    assert at_twilio[DEMO_NUMBER]["sid"] == number.json()["twilio_number_sid"]
    return twilio, [port, *(urlparse(url).port or 0 for url in providers)]


@pytest.fixture
def run_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A developer's shell on this machine's servers, with a database no run has seen yet."""
    database = f"nixflex_runsh_{uuid.uuid4().hex[:8]}"
    run_id = uuid.uuid4().hex[:8]
    env = fresh_shell_env(
        DATABASE_URL=os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}",
        REDIS_URL=os.environ["REDIS_URL"],
        NIXFLEX_DATA_DIR=str(tmp_path / "data"),
        PORT=str(free_port()),
        CELERY_QUEUE=f"nixflex-runsh-{run_id}",
        CHANNEL_LAYER_PREFIX=f"nixflex-runsh-{run_id}",
        CALL_LEASE_PREFIX=f"nixflex-runsh-{run_id}:calls",
        LOG_LEVEL="WARNING",
    )
    yield env
    queues = redis.Redis.from_url(env["REDIS_URL"])
    for key in queues.scan_iter(f"*nixflex-runsh-{run_id}*"):  # the worker's queue and its bindings
        queues.delete(key)
    with psycopg.connect(**{k: v for k, v in _admin_dsn().items() if v}, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_make_run_starts_on_a_new_machine_and_again_on_the_same_machine(
    run_env: dict[str, str], tmp_path: Path
) -> None:
    port, data_dir = int(run_env["PORT"]), Path(run_env["NIXFLEX_DATA_DIR"])

    # A machine that never ran it: a fresh database, no local state.
    first = _start(run_env, tmp_path / "first.log")
    try:
        _check_demo(first, port)
    except BaseException:
        _stop_with_ctrl_c(first, data_dir, [port])
        raise
    # Killed outright (kill -9; no chance to clean up): its server, worker and stand-ins
    # keep running, holding the port.
    first.proc.kill()
    first.proc.wait(timeout=10)
    assert listening(port)

    # The same machine again, same PORT: the leftovers are stopped, the stand-ins start
    # empty while the database keeps the demo number.
    second = _start(run_env, tmp_path / "second.log")
    ports = [port]
    try:
        assert "Stopping what an earlier 'make run' left running" in second.output
        _, ports = _check_demo(second, port)
        assert second.printed("Demo agent") == first.printed("Demo agent")
        # The printed call command works as printed (it needs no database or settings).
        command = shlex.split(second.printed("Call the demo:"))
        assert command[0] == ".venv/bin/python"
        call = subprocess.run(
            [sys.executable, *command[1:], "--say", "Thanks, goodbye"],
            cwd=ROOT,
            env=fresh_shell_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert call.returncode == 0, call.stdout + call.stderr
        assert "ended by the agent" in call.stdout and "Engine time per turn" in call.stdout, call.stdout
    finally:
        # Ctrl-C stops everything, the leftovers of the first run included.
        _stop_with_ctrl_c(second, data_dir, ports)


def test_make_run_refuses_a_port_in_use_before_starting_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = fresh_shell_env(
            DATABASE_URL=os.environ["DATABASE_URL"],
            REDIS_URL=os.environ["REDIS_URL"],
            NIXFLEX_DATA_DIR=str(data_dir),
            PORT=str(port),
        )
        started = time.monotonic()
        proc = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=120)
        finally:
            kill_session(proc)
    assert proc.returncode == 1
    assert f"make run: port {port} is in use" in output, output
    assert "Nixflex is running" not in output
    assert time.monotonic() - started < 60
    assert processes_with_env("NIXFLEX_DATA_DIR", str(data_dir)) == []
