"""The caller's audio is taken out of Twilio's `media` messages without parsing their JSON
(50 a second per call): exactly the audio a full parse gives, and anything of another
shape falls back to the full parse."""

from __future__ import annotations

import base64
import json

from telephony.consumers import _caller_audio

AUDIO = bytes(range(1, 161))
PAYLOAD = base64.b64encode(AUDIO).decode()
assert "/" in PAYLOAD and "+" in PAYLOAD
SID = "MZ0123456789abcdef0123456789abcdef"


def _twilio(media: dict[str, str], **top: str) -> str:
    # Twilio's own layout: compact JSON, "event" first.
    return json.dumps(
        {"event": "media", "sequenceNumber": "7", "media": media, "streamSid": SID, **top}, separators=(",", ":")
    )


def test_audio_of_a_twilio_media_message_is_found_as_a_full_parse_finds_it() -> None:
    for media in (
        {"track": "inbound", "chunk": "6", "timestamp": "120", "payload": PAYLOAD},
        {"payload": PAYLOAD, "track": "inbound"},
        {"payload": PAYLOAD},
    ):
        text = _twilio(media)
        assert _caller_audio(text) == base64.b64decode(json.loads(text)["media"]["payload"]) == AUDIO


def test_anything_else_is_left_to_the_full_parse() -> None:
    others = [
        _twilio({"track": "outbound", "payload": PAYLOAD}),  # not the caller's audio
        json.dumps({"event": "media", "media": {"track": "inbound", "payload": PAYLOAD}}),  # spaced layout
        json.dumps({"media": {"payload": PAYLOAD}, "event": "media"}, separators=(",", ":")),  # "event" not first
        _twilio({"track": "inbound", "payload": PAYLOAD.replace("/", "\\/")}),  # escaped characters
        json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": "t1-0"}}, separators=(",", ":")),
        json.dumps({"event": "stop", "streamSid": SID}, separators=(",", ":")),
        '{"event":"media",',  # truncated
    ]
    for text in others:
        assert _caller_audio(text) is None, text
