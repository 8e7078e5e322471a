"""Post-call summaries and extraction (Claude, one-shot). The summary is what the next
call from the same number is told about this one."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from agents import anthropic_client

logger = logging.getLogger(__name__)

SYSTEM = (
    "You summarise phone calls handled by a voice agent. Answer with one JSON object only, no prose: "
    '{"summary": "<two sentences: who called, why, what was agreed or left open>", '
    '"extraction": {<each requested field>: <value or null>}}.'
)


def summarize_transcript(
    *, model: str, transcript: list[dict[str, Any]], fields: list[str]
) -> tuple[str, dict[str, Any]]:
    """(summary, extraction) for a call's transcript. Raises LlmFailure."""
    lines = "\n".join(
        f"{'Caller' if e['role'] == 'caller' else 'Agent'}: {e['text']}" for e in transcript if e.get("text")
    )
    prompt = (
        f"Fields to extract: {', '.join(fields) or '(none)'}.\n\nTranscript:\n{lines}\n\nReturn the JSON object now."
    )
    text = anthropic_client.complete_json(model=model, system=SYSTEM, prompt=prompt)
    data = _parse_json(text)
    summary = str(data.get("summary") or "").strip() or text.strip()[:500]
    extraction_field = data.get("extraction")
    raw = extraction_field if isinstance(extraction_field, dict) else data
    extraction = {name: raw.get(name) for name in fields}
    return summary, extraction


def _parse_json(text: str) -> dict[str, Any]:
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if not match:
        return {}
    try:
        value = json.loads(match.group(0))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
