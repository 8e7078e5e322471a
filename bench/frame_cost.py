"""CPU cost of the live path, by the unit it is paid in: per caller frame (Twilio -> STT),
per agent frame (TTS -> paced -> Twilio), and per turn (Claude's stream, TTS speak/flush
and its audio). CPU time, not wall-clock latency: it holds on a busy machine.

Frames: N calls against one pinned server process (the real ASGI app), measured over a
window where every call is in the same state: all callers silent and listening, then all
agents speaking a long reply. The caller-frame cost is the server's CPU per inbound frame;
the agent-frame cost is the extra CPU per outbound frame while the agents speak.
Turns: the provider clients in this process against the stand-ins, `--turns` turns at
`--calls` concurrency: CPU per turn of `anthropic_client.stream_reply` (one Claude reply,
streamed) and of `deepgram_client.TextToSpeech` (one reply spoken: speak, flush, audio in).

    .venv/bin/python bench/frame_cost.py [--calls 50] [--seconds 10] [--turns 300]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import Awaitable, Callable

from _harness import pin_to_other_cores
from _voice import VoiceRig

LONG_REPLY = (
    "Of course. Our practice is open from nine in the morning until half past five in the evening, "
    "Monday to Friday, and on Saturday mornings from nine until one. We are closed on Sundays and on "
    "public holidays. If you need an appointment outside those hours, we can arrange an early or a late "
    "slot with one of our hygienists, just ask when you book."
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--phases", default="listen,speak,turns")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    pin_to_other_cores()
    rig = VoiceRig(greeting="Hello!")
    try:
        listen = _listening(rig, args.calls, args.seconds) if phases & {"listen", "speak"} else None
        speak = _speaking(rig, args.calls, args.seconds) if "speak" in phases else None
        rig.stop_server()
        turns = asyncio.run(_turns(args.turns, args.calls)) if "turns" in phases else None
    finally:
        rig.close()
    print(f"\n{args.calls} calls, one server process; CPU time (user + system)")
    if listen is not None:
        inbound_us = listen["cpu"] / listen["frames"] * 1e6
        print(
            f"{'caller frame (Twilio -> STT), server CPU per frame, us':<62}{inbound_us:>8.1f}"
            f"   (event loop {listen['loop'] / listen['frames'] * 1e6:.1f})"
        )
        print(f"{'server CPU per call-second while listening, ms':<62}{listen['cpu'] / listen['call_s'] * 1e3:>8.2f}")
    if listen is not None and speak is not None:
        outbound_us = (speak["cpu"] - speak["frames"] * inbound_us / 1e6) / speak["sent"] * 1e6
        print(
            f"{'agent frame (paced -> Twilio), extra server CPU per frame, us':<62}{outbound_us:>8.1f}"
            f"   ({speak['sent'] / speak['call_s'] * 0.02:.0%} of the frames due were sent)"
        )
        print(f"{'server CPU per call-second while speaking, ms':<62}{speak['cpu'] / speak['call_s'] * 1e3:>8.2f}")
    if turns is not None:
        claude, tts = turns
        print(f"{'Claude turn (stream_reply, client side), CPU per turn, ms':<62}{claude * 1e3:>8.2f}")
        print(f"{'TTS turn (speak + flush + audio in), CPU per turn, ms':<62}{tts * 1e3:>8.2f}")


def _window(rig: VoiceRig, calls: int, script: list, *, hold: float, seconds: float, settle: float) -> dict:
    """Run `calls` calls; measure the server over `seconds` once all are `settle` s in."""

    async def run() -> dict:
        sims = [rig.call(i, script, max_seconds=120, hangup_grace_s=hold) for i in range(calls)]

        async def one(i: int) -> None:
            await asyncio.sleep(i * 0.02)
            await sims[i].run()

        def sent() -> int:
            return sum(sim.rec.frames_received for sim in sims)

        tasks = [asyncio.create_task(one(i)) for i in range(calls)]
        await asyncio.sleep(calls * 0.02 + settle)
        cpu, loop, frames, started = rig.server_cpu(), rig.event_loop_cpu(), sent(), time.monotonic()
        await asyncio.sleep(seconds)
        result = {
            "cpu": rig.server_cpu() - cpu,
            "loop": rig.event_loop_cpu() - loop,
            "call_s": calls * (time.monotonic() - started),
            "sent": sent() - frames,
        }
        result["frames"] = result["call_s"] / 0.02  # the simulator sends a caller frame every 20 ms
        await asyncio.gather(*tasks)
        recs = [sim.rec for sim in sims]
        if any(r.error or r.ended_by != "caller" for r in recs):
            raise SystemExit(f"calls failed during the measurement: {[(r.ended_by, r.error) for r in recs]}")
        return result

    return asyncio.run(run())


def _listening(rig: VoiceRig, calls: int, seconds: float) -> dict:
    # The greeting plays (~0.5 s), then the caller stays silent: inbound frames only.
    return _window(rig, calls, [], hold=seconds + 6, seconds=seconds, settle=3.0)


def _speaking(rig: VoiceRig, calls: int, seconds: float) -> dict:
    import requests

    from standins.caller import Utterance

    requests.post(
        f"{rig.urls['anthropic']}/_standin/script", json={"rules": [{"match": "opening", "text": LONG_REPLY}]}
    ).raise_for_status()
    # The caller asks (~1.5 s), the agent answers for ~20 s: measured in the middle.
    return _window(rig, calls, [Utterance("Opening hours?")], hold=0.5, seconds=seconds, settle=4.0)


async def _turns(turns: int, concurrency: int) -> tuple[float, float]:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nixflex.settings")
    from agents import anthropic_client, deepgram_client

    messages = [
        {"role": "user", "content": "(The caller has been connected.)"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "I'd like to book a cleaning"},
    ]
    tools = [
        {
            "name": "end_call",
            "description": "End the call.",
            "input_schema": {"type": "object", "properties": {"goodbye": {"type": "string"}}},
        }
    ]

    async def claude_turn() -> None:
        async for _ in anthropic_client.stream_reply(
            model="claude-haiku-4-5", system="You are a receptionist. " * 40, messages=messages, tools=tools
        ):
            pass

    async def batches(turn: Callable[[int], Awaitable[None]]) -> float:
        await asyncio.gather(*(turn(i) for i in range(concurrency)))  # warm: connections, first-use paths
        before = _cpu()
        for _ in range(turns // concurrency):
            await asyncio.gather(*(turn(i) for i in range(concurrency)))
        return (_cpu() - before) / (turns // concurrency * concurrency)

    async def claude_call(i: int) -> None:
        await claude_turn()

    claude = await batches(claude_call)

    flushed = [asyncio.Event() for _ in range(concurrency)]
    sockets = [
        deepgram_client.TextToSpeech("aura-asteria-en", on_audio=lambda audio: None, on_flushed=flushed[i].set)
        for i in range(concurrency)
    ]
    readers = [asyncio.create_task(s.run()) for s in sockets]

    async def tts_turn(i: int) -> None:  # as the engine speaks a two-sentence reply
        for text, flush in (
            ("Thanks! You said: I'd like to book a cleaning.", True),
            (" Is there anything else?", False),
            (None, True),
        ):
            flushed[i].clear()
            if text is None:
                await sockets[i].flush()
            else:
                await sockets[i].speak(text, flush=flush)
            if flush:
                await flushed[i].wait()

    tts = await batches(tts_turn)
    for socket in sockets:
        await socket.close()
    for reader in readers:
        reader.cancel()
    return claude, tts


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
