"""The live call path under load: N concurrent simulated calls against ONE uvicorn process
(the real ASGI app, PostgreSQL, Redis) pinned to one core, with zero-latency stand-ins in
their own process. Callers ring 50 ms apart and each says `--turns` things, waiting for
the agent's answer each time (so caller turns cluster as calls run in step).

Per level it prints:
- failed calls: the stream broke, or the caller did not hear the greeting and an answer
  to each of its turns before hanging up itself;
- underruns: frames missing mid-utterance at the simulated Twilio (the caller hears a gap);
- engine overhead per turn (ovh): from the Deepgram stand-in sending the end of the
  caller's turn to the first agent audio frame arriving at the simulated Twilio (STT event,
  Claude request and stream, TTS and its first audio, pacing, the WebSocket back), and
  the engine's own figure (eng: end-of-turn event -> first frame sent);
- Claude's first token after the end of the turn, TTS's first byte after the first
  sentence (the engine's per-turn metrics);
- server CPU seconds per call-minute, and the CPU of the server, the stand-ins and the
  simulator (if the load generator saturates, the figures are its own);
- the capacity a server process advertises for admission, and the largest level here
  that meets the target (no failed call, no underrun, ovh p99 <= 50 ms).

    .venv/bin/python bench/voice_engine.py [--calls 1,10,50,100,150,200] [--turns 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from _harness import percentile, pin_to_other_cores
from _voice import VoiceRig, cpu_seconds

TARGET_OVERHEAD_P99_MS = 50.0
SCRIPT = ("I'd like to book a cleaning", "Is Tuesday possible?", "What time do you open?", "Thanks, that's all")


@dataclass
class Level:
    calls: int
    failed: int
    turns: int
    of: int
    underruns: int
    overhead: list[float]
    engine: list[float]
    first_token: list[float]
    first_byte: list[float]
    jitter: list[float]
    cpu_per_call_minute: float
    server_cpu: float  # share of one core over the level's wall time
    loop_cpu: float  # the server's event loop (its main thread) alone
    standins_cpu: float
    simulator_cpu: float

    @property
    def meets_target(self) -> bool:
        return (
            self.failed == 0
            and self.underruns == 0
            and self.turns == self.of
            and percentile(self.overhead, 99) <= TARGET_OVERHEAD_P99_MS
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", default="1,10,50,100,150,200")
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()

    pin_to_other_cores()
    rig = VoiceRig(greeting="Hello, how can I help?")
    from standins.caller import Utterance

    script = [Utterance(text) for text in SCRIPT[: args.turns]]
    try:
        levels = [_run_level(rig, int(n), script) for n in args.calls.split(",")]
    finally:
        rig.close()
    _print(levels)


def _run_level(rig: VoiceRig, n: int, script: list[Any]) -> Level:
    import requests
    from django_tenants.utils import schema_context

    from telephony.models import Call

    requests.post(f"{rig.urls['deepgram']}/_standin/reset").raise_for_status()
    durations: list[float] = []

    async def one(i: int) -> Any:
        await asyncio.sleep(i * 0.05)  # callers do not all ring in the same millisecond
        started = time.monotonic()
        try:
            return await rig.call(i, script, max_seconds=120, hangup_grace_s=0.5).run()
        finally:
            durations.append(time.monotonic() - started)

    async def run_calls() -> list[Any]:
        return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)

    server_before, loop_before, started = rig.server_cpu(), rig.event_loop_cpu(), time.monotonic()
    standins_before, simulator_before = cpu_seconds(rig.standins.pid), sum(os.times()[:2])
    results = asyncio.run(run_calls())
    wall = time.monotonic() - started
    server_cpu = rig.server_cpu() - server_before
    loop_cpu = rig.event_loop_cpu() - loop_before
    standins_cpu = cpu_seconds(rig.standins.pid) - standins_before
    simulator_cpu = sum(os.times()[:2]) - simulator_before

    recordings = [r for r in results if not isinstance(r, BaseException)]
    failed = len(results) - len(recordings)
    for exc in results:
        if isinstance(exc, BaseException):
            print(f"call failed: {exc!r}", file=sys.stderr)
    finals = _turn_ends(requests.get(f"{rig.urls['deepgram']}/_standin/requests").json()["connections"])
    overhead: list[float] = []
    jitter: list[float] = []
    underruns = answered_total = 0
    for rec in recordings:
        ends = sorted(finals.get(rec.call_id, []))
        speech = [(rec.t0 + a.started, rec.t0 + (a.ended or a.started)) for a in rec.agent]
        # Each caller turn once: from the stand-in's first end-of-turn message after the
        # caller stopped speaking to the first agent frame after it.
        answered = 0
        spoken = [rec.t0 + turn.speech_end for turn in rec.turns] + [float("inf")]
        for turn, (spoke, next_spoke) in zip(rec.turns, itertools.pairwise(spoken), strict=False):
            turn_ends = [t for t in ends if spoke <= t < next_spoke]
            answer = None if turn.first_agent_frame is None else rec.t0 + turn.first_agent_frame
            if turn_ends and answer is not None and answer > turn_ends[0]:
                overhead.append((answer - turn_ends[0]) * 1000)
                answered += 1
        answered_total += answered
        if rec.error or rec.refused or rec.ended_by != "caller" or answered < len(script):
            failed += 1
            print(
                f"{n} calls: call {rec.call_id} failed: ended by {rec.ended_by or '-'}, {answered} of "
                f"{len(script)} turns answered, {rec.error or 'no stream error'}",
                file=sys.stderr,
            )
        jitter += rec.inter_arrival_jitter_ms
        underruns += rec.gaps
        if os.environ.get("BENCH_DEBUG"):
            first = ends[0] if ends else 0.0
            print(
                rec.call_id,
                rec.ended_by,
                rec.close_code,
                rec.error,
                [a.text[:25] for a in rec.agent],
                [(round(s - first, 3), round(e - first, 3)) for s, e in speech],
                [round(t - first, 3) for t in ends],
            )
    time.sleep(1.0)  # the server writes the last calls' turns as they end
    with schema_context(rig.account.schema_name):
        saved = [
            t
            for call in Call.objects.filter(id__in=[r.call_id for r in recordings])
            for t in call.turns
            if t.get("caller_text")
        ]
    call_minutes = sum(durations) / 60
    return Level(
        calls=n,
        failed=failed,
        turns=answered_total,
        of=n * len(script),
        underruns=underruns,
        overhead=overhead,
        engine=[t["engine_ms"] for t in saved if t.get("engine_ms") is not None],
        first_token=_spans_ms(saved, "stt_final", "llm_first_token"),
        first_byte=_spans_ms(saved, "first_sentence", "tts_first_byte"),
        jitter=jitter,
        cpu_per_call_minute=server_cpu / call_minutes if call_minutes else 0.0,
        server_cpu=server_cpu / wall,
        loop_cpu=loop_cpu / wall,
        standins_cpu=standins_cpu / wall,
        simulator_cpu=simulator_cpu / wall,
    )


def _turn_ends(connections: list[dict[str, Any]]) -> dict[str, list[float]]:
    """End-of-turn messages the Deepgram stand-in sent, per call: speech_final (its words
    may have come in an earlier is_final piece: the engine ends the turn on it all the
    same), and UtteranceEnd."""
    finals: dict[str, list[float]] = {}
    for conn in connections:
        if conn["kind"] == "listen":
            ends = finals.setdefault(conn["tag"], [])
            ends += [t["sent_at"] for t in conn["transcripts"] if t["speech_final"]]
            ends += conn.get("utterance_ends", [])
    return finals


def _spans_ms(turns: list[dict[str, Any]], start: str, end: str) -> list[float]:
    return [(t[end] - t[start]) * 1000 for t in turns if t.get(start) is not None and t.get(end) is not None]


def _print(levels: list[Level]) -> None:
    print("\nms per turn: ovh = stand-in end-of-turn -> first agent frame at the simulated Twilio; eng = inside")
    print("the engine; llm = end of turn -> Claude's first token; tts = first sentence -> TTS first byte.")
    print("jit = |agent frame inter-arrival - 20 ms|. cpu/cmin = server CPU seconds per call-minute. CPU% = share")
    print("of one core: the server (pinned to core 0; loop = its event loop thread), the stand-ins, the simulator.\n")
    head = (
        "calls",
        "failed",
        "turns",
        "underrun",
        "ovh p50",
        "ovh p99",
        "eng p50",
        "eng p99",
        "llm p50",
        "llm p99",
        "tts p50",
        "tts p99",
        "jit p99",
        "cpu/cmin",
        "srv CPU%",
        "loop",
        "stand-in",
        "sim CPU%",
    )
    print("".join(f"{h:>9}" for h in head))
    for lv in levels:
        row = (
            lv.calls,
            lv.failed,
            f"{lv.turns}/{lv.of}",
            lv.underruns,
            *(
                percentile(values, p)
                for values in (lv.overhead, lv.engine, lv.first_token, lv.first_byte)
                for p in (50, 99)
            ),
            percentile(lv.jitter, 99),
            lv.cpu_per_call_minute,
            100 * lv.server_cpu,
            100 * lv.loop_cpu,
            100 * lv.standins_cpu,
            100 * lv.simulator_cpu,
        )
        print("".join(f"{v:>9.1f}" if isinstance(v, float) else f"{v:>9}" for v in row))
    capacity, source = _advertised_capacity()
    met = [lv.calls for lv in levels if lv.meets_target]
    print(f"\nA server process advertises a capacity of {capacity} calls ({source}; this run's server was")
    print("allowed more, to measure every level).")
    print(
        f"Largest level meeting the target (no failed call, no underrun, every turn answered, ovh p99 <= "
        f"{TARGET_OVERHEAD_P99_MS:.0f} ms): {max(met) if met else 'none'}"
    )


def _advertised_capacity() -> tuple[object, str]:
    """The number of calls a server process advertises for admission, as configured."""
    from django.conf import settings

    value = getattr(settings, "PROCESS_CALL_CAPACITY", None)
    return value, "settings.PROCESS_CALL_CAPACITY" if value is not None else "PROCESS_CALL_CAPACITY not set"


if __name__ == "__main__":
    main()
