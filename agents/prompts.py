"""Claude's system prompt for a call: the agent's prompt with the dialled number's
customer variables filled in, the call's context, and the caller's earlier calls."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping
from zoneinfo import ZoneInfo

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

PHONE_STYLE = (
    "You are speaking on a live phone call. Reply in short, natural spoken sentences "
    "(one to three), without lists, markdown, emojis or URLs. Ask one question at a time. "
    "Spell out numbers as a person would say them when it helps."
)


def render_template(text: str, variables: Mapping[str, Any]) -> str:
    """Fill `{{name}}` placeholders; unknown ones become empty rather than reaching the caller."""
    return _PLACEHOLDER.sub(lambda m: str(variables.get(m.group(1), "") or ""), text)


@dataclass(frozen=True)
class PastCall:
    at: datetime
    summary: str


@dataclass(frozen=True)
class CallContext:
    caller_number: str
    dialled_number: str
    variables: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    history: tuple[PastCall, ...] = ()
    can_transfer: bool = False


def build_system_prompt(agent_prompt: str, context: CallContext, now: datetime) -> str:
    local = now.astimezone(ZoneInfo(context.timezone or "UTC"))
    parts = [render_template(agent_prompt, context.variables).strip(), PHONE_STYLE]
    details = [f"Caller's number: {context.caller_number}.",
               f"Local time where you answer: {local:%A %d %B %Y, %H:%M} ({context.timezone})."]
    name = context.variables.get("customer_name")
    if name:
        details.insert(0, f"You are answering the phone for {name}.")
    parts.append("## This call\n" + " ".join(details))
    if context.history:
        lines = [f"- {past.at:%Y-%m-%d}: {past.summary}" for past in context.history]
        parts.append("## This caller's earlier calls (most recent first)\n" + "\n".join(lines))
    tools = "When the caller is done and you have said goodbye, call the end_call tool."
    if context.can_transfer:
        tools += " If they ask for a person, or you cannot help, call the transfer_call tool."
    parts.append(tools)
    return "\n\n".join(p for p in parts if p)


def tools_for(context: CallContext) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = [{
        "name": "end_call",
        "description": "Hang up after your goodbye has been spoken. Use when the conversation is over.",
        "input_schema": {"type": "object", "properties": {
            "goodbye": {"type": "string", "description": "What to say before hanging up."}}},
    }]
    if context.can_transfer:
        tools.append({
            "name": "transfer_call",
            "description": "Transfer the caller to a person at the clinic.",
            "input_schema": {"type": "object", "properties": {
                "message": {"type": "string", "description": "What to say before transferring."}}},
        })
    return tools
