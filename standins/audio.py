"""mu-law helpers and the "text in audio" codec used by the local stand-ins.

Telephony audio here is G.711 mu-law, 8 kHz, mono: one byte per sample, a 20 ms
frame is 160 bytes, and the silence byte is 0xFF.

The text codec lets a simulated caller (and the simulated TTS) carry words inside
audio that still *looks* like speech to anything that only measures energy:

* Every byte of a codec utterance is LOUD (mu-law 0x00-0x1F / 0x80-0x9F, i.e.
  |sample| >= 8316), so VAD / energy detection sees continuous speech.
* The utterance lasts ~65 ms per character (minimum 300 ms), like real speech.
* Each whitespace-separated word is written as one small *record* at the start of
  its share of the utterance's time span, so audio cut short (barge-in, a `clear`)
  decodes to just the words that were actually played, and a listener decoding a
  growing buffer sees the words appear in time order.
* Record = MAGIC (6 nibbles) + flags (1 nibble) + length (2 nibbles, bytes) +
  UTF-8 payload (2 nibbles per byte) + checksum (2 nibbles). A nibble ``n`` is the
  byte ``n | sign`` (mu-law exponent 7, the loudest range); the sign alternates
  every 4 samples like a ~1 kHz waveform. Filler between records uses exponent-6
  bytes (0x10-0x1F / 0x90-0x9F), which are never read as nibbles.
* Decoding is independent of frame alignment: frames are joined and scanned for
  MAGIC, so a consumer may re-chunk the audio freely.

Real speech (e.g. espeak-ng through sox) carries no records: ``decode_text_frames``
returns None for it.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections.abc import Iterable, Sequence

SAMPLE_RATE = 8000
FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
FRAME_MS = 20
SILENCE_BYTE = 0xFF
SILENCE = b"\xff" * FRAME_BYTES

#: RMS (int16 units) above which a frame counts as speech by default. Codec audio
#: is >= 8316; espeak-ng speech is typically a few thousand; line noise < 300.
SPEECH_THRESHOLD = 500.0

#: Default speaking rate of codec audio.
MS_PER_CHAR = 65.0
MIN_UTTERANCE_MS = 300.0


def _ulaw_to_linear(u: int) -> int:
    u = ~u & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -sample if sign else sample


#: byte -> int16 sample
ULAW_TABLE: tuple[int, ...] = tuple(_ulaw_to_linear(i) for i in range(256))
#: byte -> sample squared (for energy without decoding)
_ULAW_SQ: tuple[int, ...] = tuple(v * v for v in ULAW_TABLE)


def ulaw_decode(b: bytes) -> array:
    """Decode mu-law bytes to an ``array('h')`` of int16 samples."""
    return array("h", map(ULAW_TABLE.__getitem__, b))


def _linear_to_ulaw(sample: int) -> int:
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not (sample & mask):
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_encode(samples: Iterable[int]) -> bytes:
    """Encode int16 samples to mu-law bytes (slow-ish; for building test audio)."""
    return bytes(_linear_to_ulaw(int(s)) for s in samples)


# Sum of squares without a Python loop per byte: split each byte's squared sample
# into 4 base-256 digits (one translate table per digit) and sum each digit string
# with zlib.adler32, whose low 16 bits are 1 + sum(bytes) (exact while the sum stays
# below 65521, i.e. up to 256 bytes per call). ~2 us per 160-byte frame.
_SQ_DIGITS = tuple(bytes((v >> (8 * k)) & 0xFF for v in _ULAW_SQ) for k in range(4))
_adler32 = zlib.adler32


def _sum_squares(chunk: bytes) -> int:
    t0, t1, t2, t3 = _SQ_DIGITS
    return (
        ((_adler32(chunk.translate(t0)) & 0xFFFF) - 1)
        + (((_adler32(chunk.translate(t1)) & 0xFFFF) - 1) << 8)
        + (((_adler32(chunk.translate(t2)) & 0xFFFF) - 1) << 16)
        + (((_adler32(chunk.translate(t3)) & 0xFFFF) - 1) << 24)
    )


def frame_energy(frame: bytes) -> float:
    """RMS of a mu-law frame in int16 units (0.0 for silence or an empty frame)."""
    n = len(frame)
    if not n:
        return 0.0
    if n <= 256:
        total = _sum_squares(bytes(frame))
    else:
        total = sum(_sum_squares(bytes(frame[i : i + 256])) for i in range(0, n, 256))
    return math.sqrt(total / n)


def is_speech(frame: bytes, threshold: float = SPEECH_THRESHOLD) -> bool:
    return frame_energy(frame) >= threshold


def split_frames(data: bytes, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    """Cut audio into frames of ``frame_bytes`` (the last one may be shorter)."""
    return [data[i : i + frame_bytes] for i in range(0, len(data), frame_bytes)]


def silence_frames(duration_ms: float, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    n = max(0, math.ceil(duration_ms / (frame_bytes / 8.0)))
    frame = bytes([SILENCE_BYTE]) * frame_bytes
    return [frame] * n


# --------------------------------------------------------------------------- codec

_MAGIC_NIBBLES = (0xA, 0x5, 0xC, 0x3, 0x9, 0x6)
_MAGIC = bytes(_MAGIC_NIBBLES)
_FLAG_JOIN = 0x1  # no space before this record's text (a long word split in pieces)
_MAX_RECORD_PAYLOAD = 120  # bytes of UTF-8 per record
_HEADER_NIBBLES = len(_MAGIC_NIBBLES) + 1 + 2

# byte -> nibble (0..15) for data symbols, 0xFF for anything else
_CANON = bytes((b & 0x0F) if (b & 0x70) == 0 else 0xFF for b in range(256))


def _sign(pos: int) -> int:
    return 0x80 if (pos >> 2) & 1 == 0 else 0x00


def _filler(n: int, start: int = 0) -> bytearray:
    # exponent-6 bytes, magnitude varying slowly, sign alternating every 4 samples
    out = bytearray(n)
    for i in range(n):
        p = start + i
        mag = (p * 7 + (p >> 3)) & 0x0F
        out[i] = _sign(p) | 0x10 | mag
    return out


_FILLER_PERIOD = 4096
_FILLER_CACHE = bytes(_filler(_FILLER_PERIOD * 2))


def _filler_bytes(n: int, start: int = 0) -> bytes:
    out = bytearray()
    pos = start
    while len(out) < n:
        off = pos % _FILLER_PERIOD
        take = min(n - len(out), _FILLER_PERIOD)
        out += _FILLER_CACHE[off : off + take]
        pos += take
    return bytes(out)


def _record_nibbles(payload: bytes, flags: int) -> list[int]:
    length = len(payload)
    checksum = (sum(payload) + length + flags) & 0xFF
    nibbles = list(_MAGIC_NIBBLES)
    nibbles.append(flags & 0x0F)
    nibbles += [length >> 4, length & 0x0F]
    for b in payload:
        nibbles += [b >> 4, b & 0x0F]
    nibbles += [checksum >> 4, checksum & 0x0F]
    return nibbles


def _split_token(token: str) -> list[bytes]:
    data = token.encode("utf-8")
    if len(data) <= _MAX_RECORD_PAYLOAD:
        return [data]
    pieces: list[bytes] = []
    cur = ""
    for ch in token:
        if len((cur + ch).encode("utf-8")) > _MAX_RECORD_PAYLOAD:
            pieces.append(cur.encode("utf-8"))
            cur = ch
        else:
            cur += ch
    if cur:
        pieces.append(cur.encode("utf-8"))
    return pieces


def encode_text(
    text: str,
    *,
    ms_per_char: float = MS_PER_CHAR,
    min_ms: float = MIN_UTTERANCE_MS,
    frame_bytes: int = FRAME_BYTES,
) -> bytes:
    """Codec audio for ``text`` as one byte string (a whole number of frames)."""
    tokens = text.split()
    if not tokens:
        return b""
    frame_ms = frame_bytes / 8.0
    duration_ms = max(min_ms, ms_per_char * len(text.strip()))
    n_frames = max(1, math.ceil(duration_ms / frame_ms))
    records: list[tuple[int, list[int]]] = []  # (weight, nibbles)
    for token in tokens:
        for i, piece in enumerate(_split_token(token)):
            weight = len(piece) + (1 if i == 0 else 0)
            records.append((weight, _record_nibbles(piece, _FLAG_JOIN if i else 0)))
    needed = sum(len(r[1]) for r in records)
    total = n_frames * frame_bytes
    if needed > total:
        n_frames = math.ceil(needed / frame_bytes)
        total = n_frames * frame_bytes
    out = bytearray(_filler_bytes(total))
    total_weight = sum(w for w, _ in records) or 1
    pos = 0
    acc = 0
    for weight, nibbles in records:
        target = (acc * total) // total_weight
        pos = max(pos, target)
        if pos + len(nibbles) > total:  # cannot happen after the resize, but be safe
            pos = total - len(nibbles)
        for j, n in enumerate(nibbles):
            out[pos + j] = _sign(pos + j) | n
        pos += len(nibbles)
        acc += weight
    return bytes(out)


def encode_text_frames(
    text: str,
    frame_bytes: int = FRAME_BYTES,
    *,
    ms_per_char: float = MS_PER_CHAR,
    min_ms: float = MIN_UTTERANCE_MS,
) -> list[bytes]:
    """Loud mu-law frames that carry ``text`` (~65 ms per character, >= 300 ms)."""
    data = encode_text(text, ms_per_char=ms_per_char, min_ms=min_ms, frame_bytes=frame_bytes)
    return split_frames(data, frame_bytes)


def tone_frames(duration_ms: float, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    """Loud audio without any text (decodes to None; the STT stand-in falls back to
    its script for it)."""
    n = max(1, math.ceil(duration_ms / (frame_bytes / 8.0)))
    return split_frames(_filler_bytes(n * frame_bytes), frame_bytes)


def find_text_records(data: bytes, start: int = 0) -> tuple[list[tuple[int, bool, str]], int]:
    """Scan ``data`` from ``start`` for complete codec records.

    Returns ``([(offset, joined, text), ...], resume)``: ``resume`` is where to
    continue scanning once more bytes have been appended (the start of an
    incomplete trailing record, or the end of the data).
    """
    canon = bytes(data).translate(_CANON) if not isinstance(data, bytes) else data.translate(_CANON)
    found: list[tuple[int, bool, str]] = []
    n = len(canon)
    pos = start
    while True:
        i = canon.find(_MAGIC, pos)
        if i < 0:
            # keep a possible partial magic at the end
            return found, max(pos, n - len(_MAGIC) + 1)
        h = i + len(_MAGIC)
        if h + 3 > n:
            return found, i
        flags, l_hi, l_lo = canon[h], canon[h + 1], canon[h + 2]
        if flags > 15 or l_hi > 15 or l_lo > 15:
            pos = i + 1
            continue
        length = (l_hi << 4) | l_lo
        p = h + 3
        end = p + 2 * length + 2
        if end > n:
            return found, i
        chunk = canon[p:end]
        if max(chunk, default=0) > 15:
            pos = i + 1
            continue
        payload = bytes((chunk[2 * k] << 4) | chunk[2 * k + 1] for k in range(length))
        checksum = (chunk[-2] << 4) | chunk[-1]
        if (sum(payload) + length + flags) & 0xFF != checksum:
            pos = i + 1
            continue
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            pos = i + 1
            continue
        found.append((i, bool(flags & _FLAG_JOIN), text))
        pos = end


def join_records(records: Sequence[tuple[int, bool, str]]) -> str:
    out = ""
    for _, joined, text in records:
        out = out + text if (joined or not out) else out + " " + text
    return out


def decode_text(data: bytes) -> str | None:
    """Text carried by codec audio ``data`` (None when it carries none)."""
    records, _ = find_text_records(data)
    if not records:
        return None
    return join_records(records)


def decode_text_frames(frames: Iterable[bytes]) -> str | None:
    """Text carried by a run of frames (None if no codec marker, e.g. real speech)."""
    return decode_text(b"".join(frames))


def word_records(text: str) -> list[str]:
    """The words ``decode_text`` will report for ``text`` (whitespace-normalised)."""
    return text.split()
