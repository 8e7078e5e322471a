"""The live call path under load: N concurrent simulated calls against ONE uvicorn process
(the real ASGI app, PostgreSQL, Redis), with zero-latency stand-ins in their own process.

Per turn it measures the engine's overhead: from the Deepgram stand-in sending the end of
the caller's turn (speech_final) to the first agent audio frame arriving at the simulated
Twilio -- STT event, Claude request and stream, TTS request and first audio, pacing and
the WebSocket back, all with providers that answer instantly. Also: playback gaps (frames
missing mid-utterance), pacing jitter (inter-arrival of agent frames vs 20 ms), and the
server process's CPU.

Targets: p50 <= 5 ms, p99 <= 20 ms and no gaps at 100 calls; jitter p99 < 20 ms.

    .venv/bin/python bench/voice_engine.py [--calls 1,10,50,100] [--turns 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid

from _harness import ROOT, free_port, percentile, pin_to_other_cores, setup_django, start_server


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", default="1,10,50,100")
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()

    pin_to_other_cores()
    ports = {name: free_port() for name in ("twilio", "deepgram", "anthropic")}
    standins = subprocess.Popen(
        [sys.executable, "-m", "standins.serve", "--twilio-port", str(ports["twilio"]),
         "--deepgram-port", str(ports["deepgram"]), "--anthropic-port", str(ports["anthropic"])],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert standins.stdout is not None
    standins.stdout.readline()  # "stand-ins: ..." once all three listen
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    os.environ.update(TWILIO_API_BASE_URL=urls["twilio"], DEEPGRAM_BASE_URL=urls["deepgram"],
                      ANTHROPIC_BASE_URL=urls["anthropic"], PUBLIC_BASE_URL="https://voice.bench.test",
                      PLATFORM_MAX_CONCURRENT_CALLS="10000")
    setup_django()
    import requests
    from django_tenants.utils import schema_context

    from agents.services import create_agent
    from standins.caller import CallRecording, SimulatedCall, Utterance
    from telephony.models import Call
    from telephony.services.numbers import import_number
    from tenants.db import tenant_connection
    from tenants.services import create_account

    account, key = create_account(name="Voice bench", domain=f"voice-{uuid.uuid4().hex[:8]}.localhost",
                                  max_concurrent_calls=10000)
    sid, token = "AC" + uuid.uuid4().hex, uuid.uuid4().hex
    e164 = f"+4420{uuid.uuid4().int % 10**8:08d}"
    requests.post(f"{urls['twilio']}/_standin/accounts", json={"sid": sid, "token": token}).raise_for_status()
    requests.post(f"{urls['twilio']}/_standin/numbers", json={"account_sid": sid, "phone_number": e164})
    with schema_context(account.schema_name):
        agent = create_agent(account=account, name="Bench agent", system_prompt="You are a receptionist.",
                             first_message="Hello, how can I help?", silence_timeout_seconds=60)
        import_number(account=account, api_key_id=key.api_key.key_id,
                      phone_number=e164, twilio_sid=sid, twilio_token=token, agent_id=agent.id)
    tenant_connection().set_schema_to_public()

    port = free_port()
    server = start_server(port)
    server_url = f"http://127.0.0.1:{port}"
    script = [Utterance(text) for text in ("I'd like to book a cleaning", "Is Tuesday possible?",
                                           "What time do you open?", "Thanks, that's all")][: args.turns]
    rows = []
    try:
        for n in [int(x) for x in args.calls.split(",")]:
            requests.post(f"{urls['deepgram']}/_standin/reset")

            async def run_calls(count: int) -> list[CallRecording]:
                async def one(i: int) -> CallRecording:
                    await asyncio.sleep(i * 0.05)  # callers do not all ring in the same millisecond
                    call = SimulatedCall(server_url=server_url, public_base_url="https://voice.bench.test",
                                         twilio_url=urls["twilio"], account_sid=sid, auth_token=token,
                                         from_number=f"+4477{i:08d}", to_number=e164, script=script,
                                         max_seconds=120, hangup_grace_s=0.5)
                    return await call.run()

                return await asyncio.gather(*(one(i) for i in range(count)))

            cpu_before, started = _cpu_seconds(server.pid), time.monotonic()
            gen_before = _cpu_seconds(standins.pid) + sum(os.times()[:2])
            recordings = asyncio.run(run_calls(n))
            wall, cpu = time.monotonic() - started, _cpu_seconds(server.pid) - cpu_before
            gen_cpu = _cpu_seconds(standins.pid) + sum(os.times()[:2]) - gen_before
            connections = requests.get(f"{urls['deepgram']}/_standin/requests").json()["connections"]
            # End-of-turn messages the stand-in sent (speech_final with words, or UtteranceEnd).
            finals: dict[str, list[float]] = {}
            for conn in connections:
                if conn["kind"] == "listen":
                    ends = finals.setdefault(conn["tag"], [])
                    ends += [t["sent_at"] for t in conn["transcripts"] if t["speech_final"] and t["transcript"]]
                    ends += conn.get("utterance_ends", [])
            overhead, jitter, gaps, frames, turns_ok = [], [], 0, 0, 0
            if os.environ.get("BENCH_DEBUG"):
                for rec in recordings:
                    print(rec.call_id, rec.ended_by, rec.close_code, rec.error, len(rec.agent),
                          [a.text[:25] for a in rec.agent],
                          [round(rec.t0 + a.started - min(finals.get(rec.call_id, [0])), 3) for a in rec.agent],
                          len(finals.get(rec.call_id, [])))
            for rec in recordings:
                ends = sorted(finals.get(rec.call_id, []))
                speech = [(rec.t0 + a.started, rec.t0 + (a.ended or a.started)) for a in rec.agent]
                # Each reply: from the first end-of-turn message after the previous reply.
                for (_, previous_end), (start, _) in zip(speech, speech[1:], strict=False):
                    turn_ends = [t for t in ends if previous_end < t <= start]
                    if turn_ends:
                        overhead.append((start - turn_ends[0]) * 1000)
                        turns_ok += 1
                jitter += rec.inter_arrival_jitter_ms
                gaps += rec.gaps
                frames += rec.frames_received
            time.sleep(1.0)  # let the server write the last calls
            with schema_context(account.schema_name):
                engine = [t["engine_ms"] for call in Call.objects.filter(id__in=[r.call_id for r in recordings])
                          for t in call.turns if t.get("engine_ms") is not None]
            tenant_connection().set_schema_to_public()
            rows.append((n, turns_ok, n * len(script), percentile(overhead, 50), percentile(overhead, 99),
                         percentile(engine, 50), percentile(engine, 99), frames, gaps,
                         percentile(jitter, 99), 100 * cpu / wall, 100 * gen_cpu / wall))
    finally:
        server.terminate()
        server.wait()
        standins.terminate()
        standins.wait()

    head = ("calls", "turns", "of", "ovh p50", "ovh p99", "eng p50", "eng p99", "frames", "gaps",
            "jit p99", "srv CPU%", "gen CPU%")
    print("\nengine overhead per turn, ms: stand-in end-of-turn -> first agent frame at the simulator (ovh)")
    print("and inside the engine, end-of-turn event -> first frame sent (eng); jitter: |inter-arrival - 20 ms|")
    print("srv CPU%: the server process (pinned to core 0); gen CPU%: stand-ins + simulator (the other core)\n")
    print("".join(f"{h:>10}" for h in head))
    for row in rows:
        print("".join(f"{v:>10.1f}" if isinstance(v, float) else f"{v:>10}" for v in row))


if __name__ == "__main__":
    main()
