"""Cut Claude's streamed text into speakable pieces as it arrives, so the first sentence
reaches TTS while the rest is still being written."""

from __future__ import annotations

import re

# Abbreviations whose period does not end a sentence.
_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "st",
    "prof",
    "sr",
    "jr",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "approx",
    "no",
    "mt",
    "ave",
    "rd",
    "dept",
    "inc",
    "ltd",
    "co",
}
_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|[\n]+")


class SentenceChunker:
    """feed(delta) -> complete sentences; flush() -> the rest. A first piece may be cut
    at a comma once it is long enough, to get audio out sooner."""

    def __init__(self, first_min_chars: int = 60) -> None:
        self._buffer = ""
        self._emitted = 0
        self._first_min_chars = first_min_chars

    def feed(self, delta: str) -> list[str]:
        self._buffer += delta
        pieces: list[str] = []
        start = 0
        for match in _END.finditer(self._buffer):
            end = match.end()
            candidate = self._buffer[start:end]
            if self._is_false_end(candidate):
                continue
            text = candidate.strip()
            if text:
                pieces.append(text)
            start = end
        self._buffer = self._buffer[start:]
        if not pieces and self._emitted == 0 and len(self._buffer) >= self._first_min_chars:
            comma = self._buffer.rfind(", ")
            if comma >= self._first_min_chars // 2:
                pieces.append(self._buffer[: comma + 1].strip())
                self._buffer = self._buffer[comma + 2 :]
        self._emitted += len(pieces)
        return pieces

    def flush(self) -> list[str]:
        text = self._buffer.strip()
        self._buffer = ""
        if text:
            self._emitted += 1
            return [text]
        return []

    @staticmethod
    def _is_false_end(candidate: str) -> bool:
        stripped = candidate.rstrip()
        if not stripped.endswith("."):
            return False
        words = stripped[:-1].split()
        last = words[-1].lower() if words else ""
        if last.rstrip(".") in _ABBREVIATIONS:
            return True
        # "3.5" is split by the regex only at whitespace, so decimals are safe; a lone
        # initial ("J.") is not a sentence end either.
        return len(last) == 1 and last.isalpha()
