from __future__ import annotations

import json
import zoneinfo
from typing import Any

from rest_framework import serializers

from customers.models import Customer
from telephony.phone import E164_RE

# A customer's variables and opening hours are pasted into the agent's system prompt on
# every call: bounded so one customer cannot bloat every prompt (or the database row).
MAX_VARIABLES = 50
MAX_VARIABLE_NAME_CHARS = 64
MAX_VARIABLE_VALUE_CHARS = 1000
MAX_VARIABLES_TOTAL_CHARS = 10_000
MAX_OPENING_HOURS_ENTRIES = 31
MAX_OPENING_HOURS_KEY_CHARS = 32
MAX_OPENING_HOURS_CHARS = 2000


def _json_chars(value: Any) -> int:
    """Size of a value as text: a string's own length, anything else its JSON."""
    if isinstance(value, str):
        return len(value)
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


class CustomerInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    timezone = serializers.CharField(required=False, max_length=64)
    address = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    opening_hours = serializers.JSONField(required=False)
    transfer_number = serializers.RegexField(
        E164_RE, required=False, allow_blank=True, error_messages={"invalid": "Use E.164, like +447446466847."}
    )
    variables = serializers.DictField(child=serializers.JSONField(), required=False)

    def validate_timezone(self, value: str) -> str:
        if value not in zoneinfo.available_timezones():
            raise serializers.ValidationError(f"Unknown IANA time zone {value!r}.")
        return value

    def validate_opening_hours(self, value: Any) -> Any:
        if not isinstance(value, (dict, str)):
            raise serializers.ValidationError('Expected an object like {"mon": "09:00-17:00"} or text.')
        if isinstance(value, dict):
            if len(value) > MAX_OPENING_HOURS_ENTRIES:
                raise serializers.ValidationError(f"At most {MAX_OPENING_HOURS_ENTRIES} entries; got {len(value)}.")
            long_keys = [key for key in value if len(key) > MAX_OPENING_HOURS_KEY_CHARS]
            if long_keys:
                raise serializers.ValidationError(
                    f'Entry names are at most {MAX_OPENING_HOURS_KEY_CHARS} characters (like "mon-fri").'
                )
        if _json_chars(value) > MAX_OPENING_HOURS_CHARS:
            raise serializers.ValidationError(f"At most {MAX_OPENING_HOURS_CHARS} characters in all.")
        return value

    def validate_variables(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_VARIABLES:
            raise serializers.ValidationError(f"At most {MAX_VARIABLES} variables; got {len(value)}.")
        problems: dict[str, list[str]] = {}
        for name, item in value.items():
            if not name or len(name) > MAX_VARIABLE_NAME_CHARS:
                problems[name[:MAX_VARIABLE_NAME_CHARS]] = [
                    f"Variable names are 1 to {MAX_VARIABLE_NAME_CHARS} characters."
                ]
            elif _json_chars(item) > MAX_VARIABLE_VALUE_CHARS:
                problems[name] = [f"At most {MAX_VARIABLE_VALUE_CHARS} characters per value."]
        if problems:
            raise serializers.ValidationError(problems)
        if _json_chars(value) > MAX_VARIABLES_TOTAL_CHARS:
            raise serializers.ValidationError(f"At most {MAX_VARIABLES_TOTAL_CHARS} characters for all variables.")
        return value


class CustomerOutput(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = [
            "id",
            "object",
            "name",
            "timezone",
            "address",
            "opening_hours",
            "transfer_number",
            "variables",
            "created_at",
            "updated_at",
        ]

    def get_object(self, customer: Customer) -> str:
        return "customer"
