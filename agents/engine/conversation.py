"""The live conversation of one call, top to bottom:

caller audio -> Deepgram STT -> (end of turn) -> Claude, streamed -> sentences -> Deepgram
TTS -> mu-law -> AudioPlayer (paced, with marks) -> Twilio.

Nothing here touches the database or the channel layer per frame: the call's context is
loaded once before it starts (CallSetup) and the outcome is written when it ends. The
Twilio side (`MediaSink`) and persistence (`CallHooks`) are injected by the consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

from agents import anthropic_client, deepgram_client
from agents.anthropic_client import LlmFailure, TextDelta, ToolCall
from agents.deepgram_client import SpeechStarted, SttOptions, Transcript, UtteranceEnd
from agents.engine.chunker import SentenceChunker
from agents.engine.player import FRAME_SECONDS, AudioPlayer

logger = logging.getLogger(__name__)

# Short acknowledgements that should not interrupt the agent.
BACKCHANNELS = {
    "mhm",
    "mm",
    "hmm",
    "uh",
    "huh",
    "um",
    "uh-huh",
    "yeah",
    "yes",
    "yep",
    "ok",
    "okay",
    "right",
    "sure",
    "aha",
    "ah",
    "oh",
    "i see",
    "got it",
    "alright",
    "cool",
}
FALLBACK_RETRY = "Sorry, I didn't quite catch that. Could you say it again?"
FALLBACK_GIVE_UP = "I'm sorry, I'm having technical trouble right now. Please call back a little later. Goodbye."
FALLBACK_TRANSFER = "I'm sorry, I'm having technical trouble. Let me put you through to someone."
STILL_THERE = "Are you still there?"
SILENCE_GOODBYE = "I haven't heard anything, so I'll let you go. Goodbye!"
TIME_LIMIT_GOODBYE = "I'm sorry, we've reached the time limit for this call. Goodbye!"
HEARING_TROUBLE = "I'm sorry, I'm having trouble hearing you."
# Past the maximum call length by this much, the media stream is closed whatever is going on.
HARD_STOP_AFTER_SECONDS = 30.0


class EndReason(StrEnum):
    """Why a call ended (saved as Call.end_reason)."""

    CALLER_HUNG_UP = "caller_hung_up"  # Twilio sent `stop`
    STREAM_CLOSED = "stream_closed"  # the media socket closed without `stop`
    STREAM_ERROR = "stream_error"  # the media consumer or the engine failed
    AGENT_ENDED = "agent_ended"
    TRANSFERRED = "transferred"
    TRANSFERRED_LLM_UNAVAILABLE = "transferred_llm_unavailable"
    TRANSFER_FAILED = "transfer_failed"  # Twilio refused the transfer: the stream was closed instead
    LLM_UNAVAILABLE = "llm_unavailable"
    STT_UNAVAILABLE = "stt_unavailable"
    TTS_UNAVAILABLE = "tts_unavailable"
    SILENCE = "silence"
    MAX_DURATION = "max_duration"


TRANSFERS = frozenset({EndReason.TRANSFERRED, EndReason.TRANSFERRED_LLM_UNAVAILABLE})


@dataclass(frozen=True)
class CallSetup:
    """Everything the call needs, loaded once when the stream starts."""

    call_id: str
    schema_name: str
    system_prompt: str
    tools: list[dict[str, Any]]
    first_message: str
    model: str
    voice_id: str
    language: str
    endpointing_ms: int
    utterance_end_ms: int
    silence_timeout_seconds: float
    max_call_seconds: float
    transfer_number: str = ""


class MediaSink(Protocol):
    async def send_media(self, frame: bytes) -> None: ...
    async def send_mark(self, name: str) -> None: ...
    async def send_clear(self) -> None: ...


@dataclass
class CallHooks:
    """What the engine asks of the platform (Twilio REST, the media stream)."""

    hang_up: Callable[[], Awaitable[None]]
    transfer: Callable[[str], Awaitable[None]]
    say_and_hang_up: Callable[[str], Awaitable[None]]  # when our own TTS is gone
    # The engine cannot go on (a task failed, or Twilio refused the hang-up or transfer):
    # close the media stream, which ends the call at Twilio (nothing follows <Connect>),
    # and run the end path. Only schedules that; `error` is the failure, if there was one.
    abort: Callable[[EndReason, BaseException | None], None]


@dataclass
class Ending:
    """The call is winding down: the one "ending" state, entered once (`_end_call`). Why,
    and what Twilio must do once the last line has played (hang up or transfer)."""

    reason: EndReason
    then: Callable[[], Awaitable[None]] | None = None  # None once it has run (or if nothing to do)
    since: float = field(default_factory=time.monotonic)


@dataclass
class Segment:
    """A piece of agent speech flushed to TTS as one chunk, followed by one mark."""

    turn: int
    text: str
    mark: str = ""
    heard: bool = False


@dataclass
class TurnMetrics:
    index: int
    caller_text: str = ""
    caller_stopped: float | None = None
    stt_final: float | None = None
    llm_first_token: float | None = None
    first_sentence: float | None = None
    tts_first_byte: float | None = None
    first_frame_sent: float | None = None
    first_mark_ack: float | None = None
    interrupted: bool = False
    agent_text: str = ""
    heard_text: str = ""
    error: str | None = None
    # The history message and transcript entry of this turn's reply, to trim on barge-in.
    history_msg: dict[str, Any] | None = field(default=None, repr=False)
    transcript_entry: dict[str, Any] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)

        return {
            "index": self.index,
            "caller_text": self.caller_text,
            "caller_stopped": r(self.caller_stopped),
            "stt_final": r(self.stt_final),
            "llm_first_token": r(self.llm_first_token),
            "first_sentence": r(self.first_sentence),
            "tts_first_byte": r(self.tts_first_byte),
            "first_frame_sent": r(self.first_frame_sent),
            "first_mark_ack": r(self.first_mark_ack),
            "interrupted": self.interrupted,
            "agent_text": self.agent_text,
            "heard_text": self.heard_text,
            "error": self.error,
            "voice_to_voice_ms": (
                None
                if self.first_frame_sent is None or self.caller_stopped is None
                else round((self.first_frame_sent - self.caller_stopped) * 1000, 1)
            ),
            "engine_ms": (
                None
                if self.first_frame_sent is None or self.stt_final is None
                else round((self.first_frame_sent - self.stt_final) * 1000, 1)
            ),
        }


@dataclass
class Outcome:
    transcript: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    end_reason: str = ""


class Conversation:
    def __init__(self, setup: CallSetup, sink: MediaSink, hooks: CallHooks) -> None:
        self.setup = setup
        self._sink = sink
        self._hooks = hooks
        self._t0 = time.monotonic()
        self._arrivals = array("d")  # wall time of each inbound frame, for "caller stopped"
        self.player = AudioPlayer(sink.send_media, sink.send_mark)
        self._stt = deepgram_client.SpeechToText(
            SttOptions(
                language=setup.language,
                endpointing_ms=setup.endpointing_ms,
                utterance_end_ms=setup.utterance_end_ms,
                tag=setup.call_id,
            ),
            on_event=self._on_stt,
            on_down=self._on_stt_down,
        )
        self._tts = deepgram_client.TextToSpeech(
            setup.voice_id,
            on_audio=self._on_tts_audio,
            on_flushed=self._on_tts_flushed,
            on_cleared=self._on_tts_cleared,
            on_down=self._on_tts_down,
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._history: list[dict[str, Any]] = []
        self._transcript: list[dict[str, Any]] = []
        self._turns: list[TurnMetrics] = []
        self._final_buffer: list[str] = []
        self._caller_stopped_at: float | None = None  # when the caller's last words ended
        self._segments: dict[str, Segment] = {}
        self._awaiting_flush: list[Segment] = []
        self._unflushed: list[str] = []
        self._discard_tts_audio_since: float | None = None  # after a Clear, until Cleared
        self._response: asyncio.Task[None] | None = None
        self._current: TurnMetrics | None = None  # the agent turn being spoken
        self._agent_turn_index = 0
        self._llm_failures = 0
        self._reprompts = 0
        self._last_activity = time.monotonic()
        self._ending: Ending | None = None
        self._finished: Outcome | None = None  # set by finish(): everything stopped
        self._dtmf: list[str] = []
        self._dtmf_task: asyncio.Task[None] | None = None

    def now(self) -> float:
        return time.monotonic() - self._t0

    @property
    def end_reason(self) -> str:
        return self._ending.reason if self._ending is not None else ""

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [
            self._spawn(self._stt.run(), "stt"),
            self._spawn(self._tts.run(), "tts"),
            self._spawn(self.player.run(), "player"),
            self._spawn(self._watchdog(), "watchdog"),
        ]
        if self.setup.first_message:
            await self._say(self.setup.first_message, self._new_agent_turn(""))

    async def finish(self, reason: EndReason) -> Outcome:
        """The call is over (Twilio `stop`, socket closed, we hung up, or something failed):
        stop every task, close Deepgram's sockets, and say what happened. Runs once; never
        raises (the outcome must reach the database whatever broke)."""
        if self._finished is not None:
            return self._finished
        if self._ending is None:
            self._ending = Ending(reason)
        self._ending.then = None  # nothing more goes to Twilio
        current = asyncio.current_task()
        tasks = [t for t in (self._response, *self._tasks, self._dtmf_task) if t is not None and t is not current]
        self._finished = Outcome(end_reason=self._ending.reason)
        try:
            if self._response is not None and self._response is not current:
                self._response.cancel()
            self.player.close()
            await asyncio.gather(self._stt.close(), self._tts.close(), return_exceptions=True)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            try:
                if self._current is not None:
                    self._settle_heard(self._current)
                if self._final_buffer:  # the caller was mid-sentence when the call ended
                    self._transcript.append(
                        {"role": "caller", "text": " ".join(self._final_buffer), "at": round(self.now(), 2)}
                    )
            except Exception:
                logger.exception("call %s: could not settle the last turn", self.setup.call_id)
            self._finished.transcript = self._transcript
            self._finished.turns = [t.as_dict() for t in self._turns]
        return self._finished

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Every task of the call starts here: one that dies is never silent."""
        task = asyncio.create_task(coro, name=f"{name}-{self.setup.call_id}")
        task.add_done_callback(self._on_task_done)
        return task

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self._finished is not None:
            return
        error = task.exception()
        if error is None:
            return
        logger.error("call %s: %s failed; ending the call", self.setup.call_id, task.get_name(), exc_info=error)
        self._hooks.abort(EndReason.STREAM_ERROR, error)

    # --- from Twilio -------------------------------------------------------------------
    async def on_caller_audio(self, frame: bytes) -> None:
        self._arrivals.append(time.monotonic())
        await self._stt.send(frame)

    async def on_mark(self, name: str) -> None:
        if not self.player.acknowledge(name):
            return
        segment = self._segments.pop(name, None)
        if segment is not None:
            segment.heard = True
            turn = self._turn(segment.turn)
            if turn is not None:
                if turn.first_mark_ack is None:
                    turn.first_mark_ack = self.now()
                turn.heard_text = (turn.heard_text + " " + segment.text).strip()
        if not self.player.speaking:
            self._last_activity = time.monotonic()
            if self._ending is not None and self._ending.then is not None:
                # Its own task: a Twilio REST call must not hold up the caller's audio.
                self._tasks.append(self._spawn(self._run_ending_action(), "ending"))

    async def on_dtmf(self, digit: str) -> None:
        self._last_activity = time.monotonic()
        self._dtmf.append(digit)
        if self._dtmf_task is not None:
            self._dtmf_task.cancel()
        self._dtmf_task = self._spawn(self._dtmf_turn(), "dtmf")

    async def _dtmf_turn(self) -> None:
        await asyncio.sleep(1.5)  # digits typed together form one input
        digits, self._dtmf = "".join(self._dtmf), []
        if digits:
            await self._end_caller_turn(f"(keypad: {digits})", dtmf=digits)

    # --- speech-to-text ----------------------------------------------------------------
    async def _on_stt(self, event: Any) -> None:
        if isinstance(event, SpeechStarted):
            self._last_activity = time.monotonic()
            return
        if isinstance(event, UtteranceEnd):
            if self._final_buffer:
                await self._end_caller_turn(" ".join(self._final_buffer))
            return
        assert isinstance(event, Transcript)
        text = event.text.strip()
        if text:
            self._last_activity = time.monotonic()
            agent_busy = self.player.speaking or (self._response is not None and not self._response.done())
            if agent_busy and _substantive(text) and self._ending is None:
                await self._barge_in()
        if event.is_final and text:
            self._final_buffer.append(text)
            self._caller_stopped_at = self._wall_to_call_time(event.end)
        if event.speech_final and self._final_buffer:
            await self._end_caller_turn(" ".join(self._final_buffer))

    def _wall_to_call_time(self, audio_seconds: float) -> float | None:
        index = min(int(audio_seconds / FRAME_SECONDS), len(self._arrivals) - 1)
        return self._arrivals[index] - self._t0 if index >= 0 else None

    async def _on_stt_down(self) -> None:
        logger.warning("call %s: speech-to-text is gone", self.setup.call_id)
        await self._give_up(HEARING_TROUBLE, reason=EndReason.STT_UNAVAILABLE)

    # --- turns -------------------------------------------------------------------------
    async def _end_caller_turn(self, text: str, dtmf: str | None = None) -> None:
        self._final_buffer = []
        if self._ending is not None:
            return
        entry: dict[str, Any] = {"role": "caller", "text": text, "at": round(self.now(), 2)}
        if dtmf:
            entry["dtmf"] = dtmf
        self._transcript.append(entry)
        self._reprompts = 0
        turn = self._new_agent_turn(text)
        turn.stt_final = self.now()
        turn.caller_stopped = self._caller_stopped_at or turn.stt_final
        if self._history and self._history[-1]["role"] == "user":
            self._history[-1]["content"] += " " + text  # the agent said nothing in between
        else:
            self._history.append({"role": "user", "content": text})
        if self._response is not None and not self._response.done():
            self._response.cancel()
        self._response = self._spawn(self._respond(turn), "turn")

    def _new_agent_turn(self, caller_text: str) -> TurnMetrics:
        if self._current is not None:
            self._settle_heard(self._current)
        self._agent_turn_index += 1
        turn = TurnMetrics(index=self._agent_turn_index, caller_text=caller_text)
        self._turns.append(turn)
        self._current = turn
        return turn

    def _turn(self, index: int) -> TurnMetrics | None:
        for turn in reversed(self._turns):
            if turn.index == index:
                return turn
        return None

    async def _respond(self, turn: TurnMetrics) -> None:
        chunker = SentenceChunker()
        spoken: list[str] = []
        tool: ToolCall | None = None
        try:
            async for event in anthropic_client.stream_reply(
                model=self.setup.model,
                system=self.setup.system_prompt,
                messages=self._messages_for_claude(),
                tools=self.setup.tools,
            ):
                if isinstance(event, TextDelta):
                    if turn.llm_first_token is None:
                        turn.llm_first_token = self.now()
                    for sentence in chunker.feed(event.text):
                        await self._speak_piece(sentence, turn, spoken)
                else:
                    tool = event
            for sentence in chunker.flush():
                await self._speak_piece(sentence, turn, spoken)
            await self._flush_tts(turn)
        except asyncio.CancelledError:
            self._unflushed = []
            raise
        except LlmFailure as exc:
            await self._on_llm_failure(turn, str(exc))
            return
        except Exception as exc:  # a bug must not leave the caller in silence
            logger.exception("call %s: turn %d failed", self.setup.call_id, turn.index)
            await self._on_llm_failure(turn, f"{type(exc).__name__}: {exc}")
            return
        self._llm_failures = 0
        reply = " ".join(spoken)
        if reply:
            self._record_agent_text(turn, reply)
        if tool is not None:
            await self._run_tool(tool, turn, said=reply)

    def _messages_for_claude(self) -> list[dict[str, Any]]:
        """Claude's conversation must open with the user: the greeting follows a note that
        the caller was connected."""
        messages = [dict(m) for m in self._history]
        if messages and messages[0]["role"] == "assistant":
            messages.insert(0, {"role": "user", "content": "(The caller has been connected.)"})
        return messages

    async def _speak_piece(self, text: str, turn: TurnMetrics, spoken: list[str]) -> None:
        """Send a sentence to TTS as soon as Claude finishes writing it. Deepgram allows
        ~20 Flushes a minute: the first sentence is flushed at once (latency), the rest of
        the reply together at its end (`_flush_tts`)."""
        spoken.append(text)
        if turn.first_sentence is None:
            turn.first_sentence = self.now()
            self._awaiting_flush.append(Segment(turn=turn.index, text=text))
            ok = await self._tts.speak(text, flush=True)
        else:
            self._unflushed.append(text)
            ok = await self._tts.speak(" " + text, flush=False)
        if not ok:
            await self._on_tts_down()

    async def _flush_tts(self, turn: TurnMetrics) -> None:
        if not self._unflushed:
            return
        text, self._unflushed = " ".join(self._unflushed), []
        self._awaiting_flush.append(Segment(turn=turn.index, text=text))
        if not await self._tts.flush():
            await self._on_tts_down()

    async def _say(self, text: str, turn: TurnMetrics) -> None:
        """Speak a fixed line (greeting, fallback, goodbye) as one chunk."""
        if turn.first_sentence is None:
            turn.first_sentence = self.now()
        self._record_agent_text(turn, text)
        self._awaiting_flush.append(Segment(turn=turn.index, text=text))
        if not await self._tts.speak(text, flush=True):
            await self._on_tts_down()

    def _record_agent_text(self, turn: TurnMetrics, text: str) -> None:
        """What the agent says, in Claude's history and the transcript (trimmed later to
        what was heard if the caller interrupts)."""
        turn.agent_text = (turn.agent_text + " " + text).strip()
        if turn.history_msg is not None and turn.history_msg in self._history:
            turn.history_msg["content"] = turn.agent_text
        elif self._history and self._history[-1]["role"] == "assistant":
            turn.history_msg = self._history[-1]
            turn.history_msg["content"] += " " + text
        else:
            turn.history_msg = {"role": "assistant", "content": text}
            self._history.append(turn.history_msg)
        if turn.transcript_entry is not None:
            turn.transcript_entry["text"] = turn.agent_text
        else:
            turn.transcript_entry = {"role": "agent", "text": text, "at": round(self.now(), 2)}
            self._transcript.append(turn.transcript_entry)

    # --- text-to-speech ----------------------------------------------------------------
    def _on_tts_audio(self, audio: bytes) -> None:
        if self._discard_tts_audio_since is not None:
            # Audio of cleared text still in flight. Deepgram answers Clear with Cleared;
            # should that never come, stop discarding after a second.
            if time.monotonic() - self._discard_tts_audio_since < 1.0:
                return
            self._discard_tts_audio_since = None
        if not self._awaiting_flush:
            return
        turn = self._turn(self._awaiting_flush[0].turn)
        if turn is not None and turn.tts_first_byte is None:
            turn.tts_first_byte = self.now()
            self.player.on_first_frame = partial(self._mark_first_frame, turn)
        self.player.enqueue(audio)

    def _mark_first_frame(self, turn: TurnMetrics) -> None:
        turn.first_frame_sent = self.now()

    def _on_tts_flushed(self) -> None:
        if not self._awaiting_flush:
            return
        segment = self._awaiting_flush.pop(0)
        segment.mark = f"t{segment.turn}-{len(self._segments)}-{int(self.now() * 1000)}"
        self._segments[segment.mark] = segment
        self.player.mark(segment.mark)

    def _on_tts_cleared(self) -> None:
        self._discard_tts_audio_since = None

    async def _on_tts_down(self) -> None:
        """Nothing more can be spoken: Twilio says the last line and hangs up, now. (If the
        call was already ending, its hang-up or transfer runs now: no goodbye will play.)"""
        if self._ending is None:
            logger.warning("call %s: text-to-speech is gone", self.setup.call_id)
            await self._end_call(EndReason.TTS_UNAVAILABLE, then=lambda: self._hooks.say_and_hang_up(FALLBACK_GIVE_UP))
        await self._run_ending_action()

    # --- barge-in ----------------------------------------------------------------------
    async def _barge_in(self) -> None:
        turn = self._current
        if self._response is not None and not self._response.done():
            self._response.cancel()
        self.player.clear()
        self._discard_tts_audio_since = time.monotonic()
        self._awaiting_flush.clear()
        self._unflushed = []
        await asyncio.gather(self._sink.send_clear(), self._tts.clear())
        if turn is not None:
            turn.interrupted = True
            self._settle_heard(turn)

    def _settle_heard(self, turn: TurnMetrics) -> None:
        """Keep in the history and transcript only what the caller heard of this turn."""
        for name in [n for n, seg in self._segments.items() if seg.turn == turn.index]:
            del self._segments[name]
        if not turn.interrupted:
            return
        heard = turn.heard_text
        if turn.history_msg is not None:
            if heard:
                turn.history_msg["content"] = heard
            elif turn.history_msg in self._history:
                self._history.remove(turn.history_msg)
        elif heard:  # cut off while Claude was still writing
            turn.history_msg = {"role": "assistant", "content": heard}
            self._history.append(turn.history_msg)
        if turn.transcript_entry is None:
            turn.transcript_entry = {"role": "agent", "text": heard, "at": round(self.now(), 2)}
            self._transcript.append(turn.transcript_entry)
        turn.transcript_entry["text"] = heard
        turn.transcript_entry["interrupted"] = True

    # --- failures, tools, endings ------------------------------------------------------
    async def _on_llm_failure(self, turn: TurnMetrics, error: str) -> None:
        self._llm_failures += 1
        turn.error = error
        logger.warning("call %s: Claude failed (%d in a row): %s", self.setup.call_id, self._llm_failures, error)
        if self._llm_failures == 1:
            await self._say(FALLBACK_RETRY, turn)
            return
        if self.setup.transfer_number:
            await self._end_call(
                EndReason.TRANSFERRED_LLM_UNAVAILABLE, then=self._transfer, goodbye=FALLBACK_TRANSFER, turn=turn
            )
        else:
            await self._give_up(FALLBACK_GIVE_UP, reason=EndReason.LLM_UNAVAILABLE)

    async def _run_tool(self, tool: ToolCall, turn: TurnMetrics, said: str) -> None:
        if tool.name == "end_call":
            goodbye = str(tool.input.get("goodbye") or "").strip()
            await self._end_call(
                EndReason.AGENT_ENDED,
                then=self._hooks.hang_up,
                goodbye=goodbye if goodbye not in said else "",
                turn=turn,
            )
        elif tool.name == "transfer_call" and self.setup.transfer_number:
            message = str(tool.input.get("message") or "").strip()
            await self._end_call(
                EndReason.TRANSFERRED, then=self._transfer, goodbye=message if message not in said else "", turn=turn
            )

    async def _transfer(self) -> None:
        await self._hooks.transfer(self.setup.transfer_number)

    async def _give_up(self, line: str, reason: EndReason) -> None:
        await self._end_call(reason, then=self._hooks.hang_up, goodbye=line)

    # --- ending ------------------------------------------------------------------------
    async def _end_call(
        self, reason: EndReason, then: Callable[[], Awaitable[None]], goodbye: str = "", turn: TurnMetrics | None = None
    ) -> None:
        """Enter the ending state: say `goodbye` (if any), then `then` once everything has
        played. The first ending wins; nothing new starts after it (no caller turns, no
        barge-in)."""
        if self._ending is not None:
            return
        self._ending = Ending(reason, then)
        if goodbye:
            await self._say(goodbye, turn or self._new_agent_turn(""))
        if self._played_out():
            await self._run_ending_action()

    def _played_out(self) -> bool:
        return not self.player.speaking and not self._awaiting_flush

    async def _run_ending_action(self) -> None:
        """The ending's hang-up or transfer, once. Should Twilio refuse it, closing the media
        stream still ends the call (nothing follows <Connect>)."""
        ending = self._ending
        if ending is None or ending.then is None:
            return
        action, ending.then = ending.then, None
        try:
            await action()
        except Exception:
            logger.warning(
                "call %s: Twilio failed the %s; closing the media stream instead",
                self.setup.call_id,
                ending.reason,
                exc_info=True,
            )
            if ending.reason in TRANSFERS:
                ending.reason = EndReason.TRANSFER_FAILED
            self._hooks.abort(ending.reason, None)

    async def _watchdog(self) -> None:
        """Silence re-prompts, the maximum call length, and hang-ups that never got their mark."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            if now - started > self.setup.max_call_seconds + HARD_STOP_AFTER_SECONDS:
                # However it got here (Twilio never ending the call, a goodbye that never plays).
                logger.error(
                    "call %s: still up %.0f s past its maximum length; closing the media stream",
                    self.setup.call_id,
                    HARD_STOP_AFTER_SECONDS,
                )
                self._hooks.abort(self._ending.reason if self._ending else EndReason.MAX_DURATION, None)
                return
            if self._ending is not None:
                # Goodbye played (or its mark never came back): hang up anyway.
                if self._ending.then is not None and (
                    self._played_out() or now - self._ending.since > 5 + self.player.pending_seconds
                ):
                    await self._run_ending_action()
                continue
            if now - started > self.setup.max_call_seconds:
                await self._end_call(EndReason.MAX_DURATION, then=self._hooks.hang_up, goodbye=TIME_LIMIT_GOODBYE)
                continue
            busy = (
                self.player.speaking
                or self._final_buffer
                or self._awaiting_flush
                or (self._response is not None and not self._response.done())
            )
            if busy:
                continue
            if now - self._last_activity > self.setup.silence_timeout_seconds:
                self._last_activity = now
                if self._reprompts == 0:
                    self._reprompts = 1
                    await self._say(STILL_THERE, self._new_agent_turn(""))
                else:
                    await self._end_call(EndReason.SILENCE, then=self._hooks.hang_up, goodbye=SILENCE_GOODBYE)


def _substantive(text: str) -> bool:
    """Caller speech that should interrupt the agent (not "mhm", "yeah", a cough)."""
    words = [w.strip(".,!?;:").lower() for w in text.split()]
    words = [w for w in words if w]
    if not words:
        return False
    return not (" ".join(words) in BACKCHANNELS or all(w in BACKCHANNELS for w in words))
