"""Place a simulated inbound call (the offline demo): the simulator plays Twilio, the
running server answers with the agent, and the conversation is printed turn by turn.

    python -m standins.simulate_call --to +442011110001 --server http://127.0.0.1:8000 \\
        --twilio http://127.0.0.1:18010 [--api-key KEY_ID:KEY_SECRET] [--say "..."]...

Like Twilio, it knows the number from the Twilio stand-in (its account, auth token and
voice webhook URL), so it needs no database and no Django settings. With the account's
API key it also prints the engine's per-turn times from GET /v1/calls/{id}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import requests

from standins.caller import CallRecording, SimulatedCall, Utterance

DEFAULT_SCRIPT = [
    "Hi, I'd like to book a cleaning please",
    "Is Tuesday morning possible?",
    "Great, thanks. Goodbye",
]
VOICE_PATH = "/twilio/voice"


class SimulationError(Exception):
    """The call could not be placed; the message says why."""


def number_at_twilio(twilio: str, phone_number: str) -> tuple[str, str, str]:
    """(account SID, auth token, public base URL) of an imported number, from the Twilio stand-in."""
    numbers = requests.get(f"{twilio}/_standin/numbers", timeout=10).json()
    number = next((n for n in numbers if n["phone_number"] == phone_number), None)
    if number is None:
        raise SimulationError(f"{phone_number} is not a number of the Twilio stand-in at {twilio}")
    voice_url = (number.get("voice_url") or "").split("?", 1)[0]
    if not voice_url.endswith(VOICE_PATH):
        raise SimulationError(f"{phone_number}'s voice webhook is {voice_url!r}, not Nixflex's: import it first")
    tokens = {a["sid"]: a["token"] for a in requests.get(f"{twilio}/_standin/accounts", timeout=10).json()}
    # Twilio signs the webhook URL it was given: PUBLIC_BASE_URL + /twilio/voice.
    return number["account_sid"], tokens[number["account_sid"]], voice_url[: -len(VOICE_PATH)]


def print_call(rec: CallRecording) -> None:
    events: list[tuple[float, str, str, float | None]] = [(a.started, "agent", a.text, None) for a in rec.agent]
    events += [(t.speech_end, "caller", t.caller_text, t.latency_ms) for t in rec.turns]
    for at, who, text, latency in sorted(events, key=lambda e: e[0]):
        extra = f"   (agent answered after {latency:.0f} ms)" if latency is not None else ""
        print(f"[{at:6.2f}s] {who:>6}: {text}{extra}")
    print(f"\nCall {rec.call_id} ended by the {rec.ended_by or 'caller'}.")


def saved_call(server: str, api_key: str, call_id: str) -> dict[str, Any] | None:
    """The call as the API shows it once the server has written its end (when its stream closed)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = requests.get(f"{server}/v1/calls/{call_id}", headers=headers, timeout=10)
        if response.status_code == 200 and response.json().get("ended_at"):
            return response.json()
        time.sleep(0.2)
    return None


def simulate(*, to: str, from_: str, server: str, twilio: str, say: list[str], api_key: str = "") -> int:
    server, twilio = server.rstrip("/"), twilio.rstrip("/")
    account_sid, token, public_base_url = number_at_twilio(twilio, to)
    script = [Utterance(text) for text in (say or DEFAULT_SCRIPT)]
    call = SimulatedCall(
        server_url=server,
        public_base_url=public_base_url,
        twilio_url=twilio,
        account_sid=account_sid,
        auth_token=token,
        from_number=from_,
        to_number=to,
        script=script,
    )
    rec = asyncio.run(call.run())
    if rec.refused:
        print(f"The call was not connected:\n{rec.twiml}")
        return 1
    print_call(rec)
    if not api_key:
        print(f"See it in the API: GET /v1/calls/{rec.call_id}")
        return 0
    saved = saved_call(server, api_key, rec.call_id)
    if saved is None:
        print(f"The server has not recorded the end of call {rec.call_id} yet.")
        return 1
    print("Engine time per turn (end of caller turn -> first audio frame sent):")
    for turn in saved.get("turns") or []:
        if turn.get("engine_ms") is not None:
            print(
                f"  turn {turn['index']}: {turn['engine_ms']:.1f} ms "
                f"(voice-to-voice {turn['voice_to_voice_ms']:.1f} ms)"
            )
    print(f"See it in the API: GET /v1/calls/{rec.call_id}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Simulate a caller dialling an imported number.")
    parser.add_argument("--to", required=True, help="the imported number to call (E.164)")
    parser.add_argument("--from", dest="from_", default="+447700900001", help="the caller's number")
    parser.add_argument("--say", action="append", default=[], help="a caller utterance (repeatable)")
    parser.add_argument("--server", default="http://127.0.0.1:8000", help="where the server listens")
    parser.add_argument("--twilio", required=True, help="the Twilio stand-in's base URL (make run prints it)")
    parser.add_argument("--api-key", default="", help="KEY_ID:KEY_SECRET of the number's account (for the timings)")
    args = parser.parse_args()
    try:
        return simulate(
            to=args.to, from_=args.from_, server=args.server, twilio=args.twilio, say=args.say, api_key=args.api_key
        )
    except (SimulationError, requests.RequestException) as exc:
        print(f"simulate_call: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
