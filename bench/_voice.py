"""The live-call rig shared by the voice benchmarks: stand-ins in their own process, a fresh
database with one account, agent and imported number, and one pinned uvicorn server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

from _harness import ROOT, free_port, setup_django, start_server

PUBLIC_BASE_URL = "https://voice.bench.test"


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU of a process (or of one of its threads)."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    with open(path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class VoiceRig:
    def __init__(self, greeting: str = "Hello, how can I help?", server_env: dict[str, str] | None = None) -> None:
        ports = {name: free_port() for name in ("twilio", "deepgram", "anthropic")}
        self.standins = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "standins.serve",
                "--twilio-port",
                str(ports["twilio"]),
                "--deepgram-port",
                str(ports["deepgram"]),
                "--anthropic-port",
                str(ports["anthropic"]),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.standins.stdout is not None
        self.standins.stdout.readline()  # "stand-ins: ..." once all three listen
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        os.environ.update(
            TWILIO_API_BASE_URL=self.urls["twilio"],
            DEEPGRAM_BASE_URL=self.urls["deepgram"],
            ANTHROPIC_BASE_URL=self.urls["anthropic"],
            PUBLIC_BASE_URL=PUBLIC_BASE_URL,
            PLATFORM_MAX_CONCURRENT_CALLS="10000",
        )
        setup_django()
        import requests
        from django.test import Client

        from tenants.services import create_account

        self.account, key = create_account(
            name="Voice bench", domain=f"voice-{uuid.uuid4().hex[:8]}.localhost", max_concurrent_calls=10000
        )
        self.sid, self.token = "AC" + uuid.uuid4().hex, uuid.uuid4().hex
        self.e164 = f"+4420{uuid.uuid4().int % 10**8:08d}"
        requests.post(
            f"{self.urls['twilio']}/_standin/accounts", json={"sid": self.sid, "token": self.token}
        ).raise_for_status()
        requests.post(
            f"{self.urls['twilio']}/_standin/numbers", json={"account_sid": self.sid, "phone_number": self.e164}
        ).raise_for_status()
        # The agent and the number as a customer sets them up: through the public API.
        api = Client(HTTP_HOST="api.localhost", HTTP_AUTHORIZATION=f"Bearer {key.api_key.key_id}:{key.secret}")
        agent = api.post(
            "/v1/agents",
            {
                "name": "Bench agent",
                "system_prompt": "You are a receptionist.",
                "first_message": greeting,
                "silence_timeout_seconds": 60,
            },
            content_type="application/json",
        )
        assert agent.status_code == 201, agent.content
        number = api.post(
            "/v1/phone-numbers",
            {
                "phone_number": self.e164,
                "twilio_sid": self.sid,
                "twilio_token": self.token,
                "agent_id": agent.json()["id"],
            },
            content_type="application/json",
        )
        assert number.status_code == 201, number.content
        self.server: subprocess.Popen | None = None
        self.server_url = ""
        self.start_server(server_env)

    def start_server(self, env: dict[str, str] | None = None) -> None:
        port = free_port()
        # Admission must not refuse what the benchmark measures: the server takes any
        # number of calls here (its advertised capacity is reported from settings).
        self.server = start_server(
            port, {"PROCESS_CALL_CAPACITY": "10000", "PLATFORM_ACCOUNT_SHARE": "1.0", **(env or {})}
        )
        self.server_url = f"http://127.0.0.1:{port}"

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait()
            self.server = None

    def call(self, i: int, script: list[Any], **kwargs: Any) -> Any:
        from standins.caller import SimulatedCall

        return SimulatedCall(
            server_url=self.server_url,
            public_base_url=PUBLIC_BASE_URL,
            twilio_url=self.urls["twilio"],
            account_sid=self.sid,
            auth_token=self.token,
            from_number=f"+4477{i:08d}",
            to_number=self.e164,
            script=script,
            **kwargs,
        )

    def server_cpu(self) -> float:
        assert self.server is not None
        return cpu_seconds(self.server.pid)

    def event_loop_cpu(self) -> float:
        """The server's main thread: the event loop (the other threads run sync Django code)."""
        assert self.server is not None
        return cpu_seconds(self.server.pid, self.server.pid)

    def close(self) -> None:
        self.stop_server()
        self.standins.terminate()
        self.standins.wait()
