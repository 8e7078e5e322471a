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
import sys
import time

from _harness import percentile, pin_to_other_cores
from _voice import VoiceRig, cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", default="1,10,50,100,150,200")
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()

    pin_to_other_cores()
    rig = VoiceRig(greeting="Hello, how can I help?")
    import requests
    from django.db import connection
    from django_tenants.utils import schema_context

    from standins.caller import Utterance
    from telephony.models import Call

    urls, account = rig.urls, rig.account
    script = [Utterance(text) for text in ("I'd like to book a cleaning", "Is Tuesday possible?",
                                           "What time do you open?", "Thanks, that's all")][: args.turns]
    rows = []
    try:
        for n in [int(x) for x in args.calls.split(",")]:
            requests.post(f"{urls['deepgram']}/_standin/reset")
            durations: list[float] = []

            async def run_calls() -> list:
                async def one(i: int):
                    await asyncio.sleep(i * 0.05)  # callers do not all ring in the same millisecond
                    call = rig.call(i, script, max_seconds=120, hangup_grace_s=0.5)
                    started = time.monotonic()
                    try:
                        return await call.run()
                    finally:
                        durations.append(time.monotonic() - started)

                return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)

            cpu_before, started = rig.server_cpu(), time.monotonic()
            gen_before = cpu_seconds(rig.standins.pid) + sum(os.times()[:2])
            results = asyncio.run(run_calls())
            wall, cpu = time.monotonic() - started, rig.server_cpu() - cpu_before
            gen_cpu = cpu_seconds(rig.standins.pid) + sum(os.times()[:2]) - gen_before
            recordings = [r for r in results if not isinstance(r, BaseException)]
            failed = len(results) - len(recordings)
            for exc in results:
                if isinstance(exc, BaseException):
                    print(f"call failed: {exc!r}", file=sys.stderr)
            connections = requests.get(f"{urls['deepgram']}/_standin/requests").json()["connections"]
            # End-of-turn messages the stand-in sent: speech_final (its words may have come in
            # an earlier is_final piece: the engine ends the turn on it all the same), or
            # UtteranceEnd.
            finals: dict[str, list[float]] = {}
            for conn in connections:
                if conn["kind"] == "listen":
                    ends = finals.setdefault(conn["tag"], [])
                    ends += [t["sent_at"] for t in conn["transcripts"] if t["speech_final"]]
                    ends += conn.get("utterance_ends", [])
            overhead, jitter, gaps, frames, turns_ok = [], [], 0, 0, 0
            if os.environ.get("BENCH_DEBUG"):
                for rec in recordings:
                    first = min(finals.get(rec.call_id, [0]))
                    print(rec.call_id, rec.ended_by, rec.close_code, rec.error, len(rec.agent),
                          [a.text[:25] for a in rec.agent],
                          [(round(rec.t0 + a.started - first, 3), round(rec.t0 + (a.ended or 0) - first, 3))
                           for a in rec.agent],
                          [round(t - first, 3) for t in sorted(finals.get(rec.call_id, []))])
            for rec in recordings:
                ends = sorted(finals.get(rec.call_id, []))
                speech = [(rec.t0 + a.started, rec.t0 + (a.ended or a.started)) for a in rec.agent]
                # Each reply: from the first end-of-turn message after the previous reply.
                answered = 0
                for (_, previous_end), (start, _) in zip(speech, speech[1:]):
                    turn_ends = [t for t in ends if previous_end < t <= start]
                    if turn_ends:
                        overhead.append((start - turn_ends[0]) * 1000)
                        answered += 1
                turns_ok += answered
                # A failed call: the stream broke, or the caller did not hear the greeting and
                # an answer to each of its turns before hanging up itself.
                if rec.error or rec.refused or rec.ended_by != "caller" or answered < len(script):
                    failed += 1
                jitter += rec.inter_arrival_jitter_ms
                gaps += rec.gaps
                frames += rec.frames_received
            time.sleep(1.0)  # let the server write the last calls
            with schema_context(account.schema_name):
                saved = [t for call in Call.objects.filter(id__in=[r.call_id for r in recordings])
                         for t in call.turns if t.get("caller_text")]
            connection.set_schema_to_public()
            engine = [t["engine_ms"] for t in saved if t.get("engine_ms") is not None]
            first_token = _spans_ms(saved, "stt_final", "llm_first_token")
            first_byte = _spans_ms(saved, "first_sentence", "tts_first_byte")
            call_minutes = sum(durations) / 60
            rows.append((n, failed, turns_ok, n * len(script), gaps, percentile(overhead, 50),
                         percentile(overhead, 99), percentile(engine, 50), percentile(engine, 99),
                         percentile(first_token, 50), percentile(first_token, 99), percentile(first_byte, 50),
                         percentile(first_byte, 99), percentile(jitter, 99), cpu / call_minutes if call_minutes else 0.0,
                         100 * cpu / wall, 100 * gen_cpu / wall))
        capacity, capacity_source = _advertised_capacity(rig.server_url)
    finally:
        rig.close()

    head = ("calls", "failed", "turns", "of", "underrun", "ovh p50", "ovh p99", "eng p50", "eng p99", "llm p50",
            "llm p99", "tts p50", "tts p99", "jit p99", "cpu/cmin", "srv CPU%", "gen CPU%")
    print("\nms per turn. ovh: stand-in end-of-turn -> first agent frame at the simulator; eng: inside the engine,")
    print("end-of-turn event -> first frame sent; llm: end-of-turn -> Claude's first token; tts: first sentence ->")
    print("TTS first byte. underrun: frames missing mid-utterance at the simulated Twilio; jit: |inter-arrival - 20 ms|.")
    print("cpu/cmin: server CPU seconds per call-minute. srv CPU%: the server process (pinned to core 0);")
    print("gen CPU%: stand-ins + simulator (the other cores). failed: broken stream, or a turn left unanswered.\n")
    print("".join(f"{h:>9}" for h in head))
    for row in rows:
        print("".join(f"{v:>9.1f}" if isinstance(v, float) else f"{v:>9}" for v in row))
    print(f"\nadvertised capacity of the server process: {capacity} calls ({capacity_source})")


def _spans_ms(turns: list[dict], start: str, end: str) -> list[float]:
    return [(t[end] - t[start]) * 1000 for t in turns if t.get(start) is not None and t.get(end) is not None]


def _advertised_capacity(server_url: str) -> tuple[object, str]:
    """The number of calls the server process says it takes (admission refuses beyond it)."""
    from django.conf import settings

    value = getattr(settings, "PROCESS_CALL_CAPACITY", None)
    return value, "settings.PROCESS_CALL_CAPACITY" if value is not None else "not set"


if __name__ == "__main__":
    main()
