"""Input and output serializers of /v1/calls."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from nixflex.pagination import PageQuery, list_of
from telephony.models import Call

CALL_STATUSES = tuple(Call.STATUS_RANK)
CALL_DIRECTIONS = (Call.INBOUND, Call.OUTBOUND)
SUMMARY_STATUSES = ("none", "pending", "done", "failed")
# An unencoded "+" in a query string arrives as a space: "+00:00" -> " 00:00".
_SPACE_OFFSET = re.compile(r" (\d{2}(?::?\d{2})?)$")


class QueryTimestampField(serializers.DateTimeField):
    """ISO 8601 (`2026-11-22T15:04:05Z`, with an offset, or a bare date); naive means UTC."""

    def to_internal_value(self, value: Any) -> dt.datetime:
        raw = str(value)
        text = _SPACE_OFFSET.sub(r"+\1", raw.strip())
        try:
            parsed = parse_datetime(text)
            if parsed is None:
                day = parse_date(text)
                parsed = dt.datetime.combine(day, dt.time()) if day is not None else None
        except ValueError:  # well formed but impossible, like 2026-02-30
            parsed = None
        if parsed is None:
            raise serializers.ValidationError(f"Expected an ISO 8601 date-time like 2026-11-22T15:04:05Z, got {raw!r}.")
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, dt.UTC)
        return parsed


def _choice(choices: tuple[str, ...], **kwargs: Any) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=list(choices),
        required=False,
        allow_blank=True,
        error_messages={"invalid_choice": f"Expected one of {', '.join(choices)}, got '{{input}}'."},
        **kwargs,
    )


class CallListQuery(PageQuery):
    """GET /v1/calls: filters (all optional, combined with AND) and the page."""

    agent_id = serializers.CharField(required=False, allow_blank=True)
    customer_id = serializers.CharField(required=False, allow_blank=True)
    phone_number = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Our number on the call (E.164): the dialled number of an inbound call, the caller ID of an "
        "outbound one.",
    )
    status = _choice(CALL_STATUSES)
    direction = _choice(CALL_DIRECTIONS)
    created_after = QueryTimestampField(required=False, help_text="ISO 8601, exclusive.")
    created_before = QueryTimestampField(required=False, help_text="ISO 8601, exclusive.")

    def validate_phone_number(self, value: str) -> str:
        # A raw "+447446466847" in a query string arrives as " 447446466847".
        number = value.strip()
        if value.startswith(" ") and number.isdigit():
            number = f"+{number}"
        return number

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # An empty filter (`?status=`) filters nothing.
        return {name: value for name, value in attrs.items() if value != ""}


class _BlankAsNull(serializers.CharField):
    """A text column stored as "" when empty, rendered as null."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, **kwargs)

    # "" renders as null: the one CharField that may answer None.
    def to_representation(self, value: Any) -> str | None:  # type: ignore[override]
        return str(value) if value else None


class TranscriptEntry(serializers.Serializer):
    role = serializers.ChoiceField(choices=["agent", "caller"])
    text = serializers.CharField()
    at = serializers.FloatField(help_text="Seconds into the call.")
    interrupted = serializers.BooleanField(required=False, help_text="The caller spoke over the agent.")
    dtmf = serializers.BooleanField(required=False, help_text="Keypad digits, not speech.")


@extend_schema_field(TranscriptEntry(many=True))
class _TranscriptField(serializers.JSONField):
    """Rendered as stored; documented as TranscriptEntry objects."""


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "object", "additionalProperties": {}},
        "description": "Per-turn latency marks (seconds into the call) and what the caller heard.",
    }
)
class _TurnsField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {},
        "description": "The agent's extraction fields, as filled from the conversation.",
    }
)
class _ExtractionField(serializers.JSONField):
    pass


class CallOutput(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    direction = serializers.ChoiceField(choices=list(CALL_DIRECTIONS))
    status = serializers.ChoiceField(choices=list(CALL_STATUSES))
    from_number = serializers.CharField()
    to_number = serializers.CharField()
    agent_id = serializers.CharField(allow_null=True)
    customer_id = serializers.CharField(allow_null=True)
    twilio_call_sid = serializers.CharField()
    rejection_reason = _BlankAsNull(help_text="Why Nixflex refused the call, like `concurrent_call_limit`.")
    end_reason = _BlankAsNull()
    started_at = serializers.DateTimeField()
    answered_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.IntegerField(allow_null=True)
    summary = _BlankAsNull()
    created_at = serializers.DateTimeField()

    def get_object(self, call: Call) -> str:
        return "call"


class CallDetailOutput(CallOutput):
    transcript = _TranscriptField()
    turns = _TurnsField()
    extraction = _ExtractionField()
    summary_status = serializers.ChoiceField(choices=list(SUMMARY_STATUSES))


CallList = list_of(CallOutput)
