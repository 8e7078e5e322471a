"""Run the Twilio, Deepgram and Anthropic stand-ins together (the offline demo, benchmarks).

    python -m standins.serve --twilio-port 18010 --deepgram-port 18011 --anthropic-port 18012

Port 0 picks a free port; --ready-file then tells the caller where each one listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from standins.anthropic_api import AnthropicStandin
from standins.deepgram_api import DeepgramStandin
from standins.twilio_api import TwilioStandin


def _write_ready_file(path: str, urls: dict[str, str]) -> None:
    """Written whole, then renamed: a reader never sees half of it."""
    with open(f"{path}.tmp", "w") as out:
        json.dump(urls, out)
    os.replace(f"{path}.tmp", path)


async def serve(
    host: str, twilio_port: int, deepgram_port: int, anthropic_port: int, twilio_latency_ms: float, ready_file: str = ""
) -> None:
    twilio = TwilioStandin(latency_ms=twilio_latency_ms)
    deepgram = DeepgramStandin()
    anthropic = AnthropicStandin()
    urls = [
        await twilio.start(host, twilio_port),
        await deepgram.start(host, deepgram_port),
        await anthropic.start(host, anthropic_port),
    ]
    print("stand-ins: twilio {}, deepgram {}, anthropic {}".format(*urls), flush=True)
    if ready_file:
        await asyncio.to_thread(
            _write_ready_file, ready_file, dict(zip(("twilio", "deepgram", "anthropic"), urls, strict=True))
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for standin in (twilio, deepgram, anthropic):
        await standin.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--twilio-port", type=int, default=18010)
    parser.add_argument("--deepgram-port", type=int, default=18011)
    parser.add_argument("--anthropic-port", type=int, default=18012)
    parser.add_argument("--twilio-latency-ms", type=float, default=0.0)
    parser.add_argument("--ready-file", default="", help="write the three base URLs here (JSON) once listening")
    args = parser.parse_args()
    asyncio.run(
        serve(
            args.host,
            args.twilio_port,
            args.deepgram_port,
            args.anthropic_port,
            args.twilio_latency_ms,
            args.ready_file,
        )
    )


if __name__ == "__main__":
    main()
