"""The first caller turn after a server starts vs the turns after it: a fresh uvicorn
process, then calls one after another, each answering two caller turns. Reports the
engine's own figure per turn (end of the caller's turn -> first agent frame sent, from the
call's saved turn metrics) and Claude's first token / TTS's first byte within it.

    .venv/bin/python bench/cold_start.py [--starts 3] [--calls 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from _harness import pin_to_other_cores
from _voice import VoiceRig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=3, help="fresh server processes (the figure is their median)")
    parser.add_argument("--calls", type=int, default=3, help="calls per server process, one after another")
    args = parser.parse_args()
    pin_to_other_cores()
    rig = VoiceRig(greeting="Hello, how can I help?")
    from django_tenants.utils import schema_context

    from standins.caller import Utterance
    from telephony.models import Call

    script = [Utterance("I'd like to book a cleaning"), Utterance("Is Tuesday possible?")]
    rows: list[list[dict]] = []  # per start: the answered turns of every call, in order
    try:
        for start in range(args.starts):
            if start:
                rig.stop_server()
                rig.start_server()
            call_ids = []
            for i in range(args.calls):
                rec = asyncio.run(rig.call(start * 100 + i, script, max_seconds=30, hangup_grace_s=0.3).run())
                if rec.error or rec.ended_by != "caller":
                    raise SystemExit(f"call failed: {rec.ended_by} {rec.error}")
                call_ids.append(rec.call_id)
            time.sleep(0.5)  # the server writes the call's turns as it ends
            with schema_context(rig.account.schema_name):
                calls = {c.id: c for c in Call.objects.filter(id__in=call_ids)}
                rows.append([t for cid in call_ids for t in calls[cid].turns if t.get("caller_text")])
    finally:
        rig.close()

    def column(index: int, key: str) -> float:
        return statistics.median(_figure(turns[index], key) for turns in rows)

    print(f"\nms, median over {args.starts} fresh server processes; engine: end of caller turn -> first agent")
    print("frame sent; llm: -> Claude's first token; tts: first sentence -> TTS first byte\n")
    print(f"{'turn':<34}{'engine':>9}{'llm':>9}{'tts':>9}")
    labels = [
        f"call {c + 1}, turn {t + 1}" + (" (first after start)" if c == t == 0 else "")
        for c in range(args.calls)
        for t in range(len(script))
    ]
    for index, label in enumerate(labels):
        print(f"{label:<34}" + "".join(f"{column(index, key):>9.1f}" for key in ("engine", "llm", "tts")))


def _figure(turn: dict, key: str) -> float:
    if key == "engine":
        return turn["engine_ms"]
    start, end = {"llm": ("stt_final", "llm_first_token"), "tts": ("first_sentence", "tts_first_byte")}[key]
    return (turn[end] - turn[start]) * 1000


if __name__ == "__main__":
    main()
