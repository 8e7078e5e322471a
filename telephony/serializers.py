"""The shapes of /v1/calls, /v1/phone-numbers, /v1/jobs and /v1/twilio-accounts: what a request may
carry (inputs) and what the API answers (outputs).

An import is checked in the seed's order (../shared/seeds/byo-twilio-numbers.txt):
required fields and types (`invalid_request`, naming every field), then the phone
format (`invalid_phone_format`), then the Account SID (`invalid_twilio_sid`). Whatever
needs Twilio or the database is the service's job.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from nixflex.errors import ApiError
from nixflex.pagination import PageQuery, list_of
from telephony.models import Call, Job, JobRow, PhoneNumber, TwilioAccount
from telephony.phone import is_account_sid, is_e164

MAX_BULK_ROWS = 1000
MAX_TOKEN_CHARS = 256


class StrictCharField(serializers.CharField):
    """A JSON string, never a number or a boolean turned into one."""

    default_error_messages = {"not_a_string": "Expected a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


# --- Phone numbers ---------------------------------------------------------------------


class PhoneNumberImportInput(serializers.Serializer):
    phone_number = StrictCharField(trim_whitespace=False, help_text="E.164, like +447446466847")
    twilio_sid = StrictCharField(trim_whitespace=False, help_text="Your Twilio Account SID (AC + 32 hex)")
    twilio_token = StrictCharField(
        trim_whitespace=False,
        max_length=MAX_TOKEN_CHARS,
        write_only=True,
        help_text="Your Twilio auth token; stored encrypted, never returned",
    )
    agent_id = StrictCharField()
    customer_id = StrictCharField(allow_null=True, default=None)
    friendly_name = StrictCharField(
        allow_null=True, allow_blank=True, trim_whitespace=False, max_length=200, default=""
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Only once every field is present and a string; the format checks in the seed's order.
        if not is_e164(attrs["phone_number"]):
            raise ApiError(
                "invalid_phone_format", details={"field": "phone_number", "expected": "E.164, like +447446466847"}
            )
        if not is_account_sid(attrs["twilio_sid"]):
            raise ApiError(
                "invalid_twilio_sid", details={"field": "twilio_sid", "expected": "AC followed by 32 hex characters"}
            )
        attrs["friendly_name"] = attrs.get("friendly_name") or ""
        return attrs


class PhoneNumberUpdateInput(serializers.Serializer):
    customer_id = StrictCharField(required=False, allow_null=True, help_text="null detaches the customer")
    friendly_name = StrictCharField(required=False, allow_blank=True, trim_whitespace=False, max_length=200)
    agent_id = StrictCharField(
        required=False, help_text="Only the current agent: to move a number, delete it and import it again"
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: ["Cannot be changed."] for name in unknown})
        return attrs


class PhoneNumberListQuery(serializers.Serializer):
    agent_id = StrictCharField(required=False, help_text="Only this agent's numbers")
    customer_id = StrictCharField(required=False, help_text="Only this customer's numbers")


class PhoneNumberDeleteQuery(serializers.Serializer):
    force = serializers.BooleanField(
        default=False,
        help_text="Remove the number here even if Twilio refuses or cannot be reached (its Twilio account is "
        "closed, or its credentials are gone): its webhooks may still point at Nixflex. The response "
        "says whether they were cleared.",
    )


class PhoneNumberOutput(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    agent_id = serializers.CharField(read_only=True)
    customer_id = serializers.CharField(read_only=True, allow_null=True)
    twilio_sid = serializers.CharField(
        source="twilio_account.account_sid", read_only=True, help_text="The Twilio Account SID"
    )
    status = serializers.SerializerMethodField()
    webhook_status = serializers.ChoiceField(
        read_only=True,
        choices=[
            (PhoneNumber.WEBHOOKS_OK, "Twilio sends this number's calls and messages to Nixflex"),
            (PhoneNumber.WEBHOOKS_DRIFTED, "Someone pointed the webhooks elsewhere: repair them"),
            (PhoneNumber.WEBHOOKS_MISSING, "The number is gone from the Twilio account"),
            (PhoneNumber.WEBHOOKS_UNKNOWN, "The last check could not reach Twilio"),
        ],
    )

    class Meta:
        model = PhoneNumber
        fields = [
            "object",
            "phone_number",
            "agent_id",
            "customer_id",
            "friendly_name",
            "twilio_sid",
            "twilio_number_sid",
            "voice_url",
            "sms_url",
            "status_callback_url",
            "status",
            "webhook_status",
            "webhook_checked_at",
            "api_key_id",
            "created_at",
        ]
        read_only_fields = fields

    def get_object(self, number: PhoneNumber) -> str:
        return "phone_number"

    def get_status(self, number: PhoneNumber) -> str:
        return "active"


class TwilioErrorOutput(serializers.Serializer):
    code = serializers.IntegerField(allow_null=True, help_text="Twilio's error code, like 20003")
    message = serializers.CharField()
    status = serializers.IntegerField(allow_null=True, help_text="The HTTP status Twilio answered")


class PhoneNumberDeletedOutput(serializers.Serializer):
    """Renders a telephony.services.numbers.Removal."""

    object = serializers.SerializerMethodField()
    phone_number = serializers.CharField()
    deleted = serializers.SerializerMethodField()
    twilio_webhooks_cleared = serializers.BooleanField(
        help_text="Whether Twilio confirmed that the number no longer routes to Nixflex"
    )
    forced = serializers.BooleanField(
        help_text="True when Twilio failed and the number was removed here only, because of ?force=true"
    )
    twilio_error = TwilioErrorOutput(allow_null=True, help_text="What Twilio answered, when it failed")

    def get_object(self, removal: Any) -> str:
        return "phone_number"

    def get_deleted(self, removal: Any) -> bool:
        return True


# --- Bulk imports and jobs -----------------------------------------------------------------


@extend_schema_field(PhoneNumberImportInput)
class ImportRowField(serializers.JSONField):
    """One row of a bulk import: taken as sent and checked when the job runs it, so a bad
    row fails on its own with exactly what the single import would have answered."""


class BulkImportInput(serializers.Serializer):
    numbers = serializers.ListField(
        child=ImportRowField(), min_length=1, max_length=MAX_BULK_ROWS, help_text=f"1 to {MAX_BULK_ROWS} import rows"
    )


class ApiErrorBodyOutput(serializers.Serializer):
    type = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()
    doc_url = serializers.URLField()
    details = serializers.DictField()


class JobRowOutput(serializers.ModelSerializer):
    phone_number = serializers.SerializerMethodField()
    phone_number_object = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = JobRow
        fields = ["index", "phone_number", "status", "http_status", "phone_number_object", "error"]
        read_only_fields = fields

    def get_phone_number(self, row: JobRow) -> str | None:
        value = row.params.get("phone_number")
        return value if isinstance(value, str) else None

    @extend_schema_field(PhoneNumberOutput(allow_null=True))
    def get_phone_number_object(self, row: JobRow) -> Any:
        return row.result if row.status == JobRow.SUCCEEDED else None

    @extend_schema_field(ApiErrorBodyOutput(allow_null=True))
    def get_error(self, row: JobRow) -> Any:
        return (row.result or {}).get("error") if row.status == JobRow.FAILED else None


_JOB_FAILURE_MESSAGES: dict[str, str] = {
    Job.FailureReason.CRASHED: "The job stopped with an internal error on each of its {attempts} attempts.",
    Job.FailureReason.WORKER_LOST: "The worker running the job stopped on each of its {attempts} attempts.",
}


def job_failure_error(job: Job) -> ApiError:
    """Why a failed job stopped, in the shape of a row's error."""
    message = _JOB_FAILURE_MESSAGES.get(job.failure_reason, "The job stopped.").format(attempts=job.attempts)
    return ApiError(
        "job_failed",
        f"{message} Rows already finished keep their outcome; the others were not imported.",
        {"job_id": job.id, "reason": job.failure_reason, "attempts": job.attempts},
    )


class JobOutput(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    done = serializers.IntegerField(read_only=True)
    progress = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "object",
            "kind",
            "status",
            "total",
            "done",
            "succeeded",
            "failed",
            "progress",
            "attempts",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_object(self, job: Job) -> str:
        return "job"

    @extend_schema_field(ApiErrorBodyOutput(allow_null=True))
    def get_error(self, job: Job) -> dict[str, Any] | None:
        """Why the job failed (status `failed`), else null."""
        if job.status != Job.FAILED:
            return None
        body: dict[str, Any] = job_failure_error(job).body()["error"]
        return body

    def get_progress(self, job: Job) -> float:
        return round(job.done / job.total, 4) if job.total else 1.0


class JobDetailOutput(JobOutput):
    rows = JobRowOutput(many=True, read_only=True)

    class Meta(JobOutput.Meta):
        fields = [*JobOutput.Meta.fields, "rows"]
        read_only_fields = fields


# --- Twilio accounts -------------------------------------------------------------------------


class TwilioCredentialsInput(serializers.Serializer):
    auth_token = StrictCharField(
        trim_whitespace=False,
        max_length=MAX_TOKEN_CHARS,
        write_only=True,
        help_text="The account's new auth token: checked with Twilio before it is stored; never returned",
    )


class TwilioAccountUpdateInput(serializers.Serializer):
    friendly_name = StrictCharField(allow_blank=True, max_length=200)


class TwilioAccountOutput(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    phone_numbers = serializers.SerializerMethodField()

    class Meta:
        model = TwilioAccount
        fields = ["object", "account_sid", "friendly_name", "phone_numbers", "verified_at", "created_at", "updated_at"]
        read_only_fields = fields

    def get_object(self, account: TwilioAccount) -> str:
        return "twilio_account"

    def get_phone_numbers(self, account: TwilioAccount) -> int:
        """How many of this account's numbers are imported."""
        count = getattr(account, "phone_number_count", None)
        return count if count is not None else account.phone_numbers.count()


class TwilioAccountDeletedOutput(serializers.Serializer):
    object = serializers.SerializerMethodField()
    account_sid = serializers.CharField()
    deleted = serializers.SerializerMethodField()

    def get_object(self, removed: Any) -> str:
        return "twilio_account"

    def get_deleted(self, removed: Any) -> bool:
        return True


# --- Calls ---------------------------------------------------------------------------------

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
