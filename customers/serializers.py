from __future__ import annotations

from typing import Any

from rest_framework import serializers

from customers.models import Customer
from telephony.phone import E164_RE


class CustomerInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    timezone = serializers.CharField(required=False, max_length=64)
    address = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    opening_hours = serializers.JSONField(required=False)
    transfer_number = serializers.RegexField(E164_RE, required=False, allow_blank=True,
                                             error_messages={"invalid": "Use E.164, like +447446466847."})
    variables = serializers.DictField(child=serializers.JSONField(), required=False)

    def validate_timezone(self, value: str) -> str:
        import zoneinfo

        if value not in zoneinfo.available_timezones():
            raise serializers.ValidationError(f"Unknown IANA time zone {value!r}.")
        return value

    def validate_opening_hours(self, value: Any) -> Any:
        if not isinstance(value, (dict, str)):
            raise serializers.ValidationError("Expected an object like {\"mon\": \"09:00-17:00\"} or text.")
        return value


class CustomerOutput(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = ["id", "object", "name", "timezone", "address", "opening_hours", "transfer_number", "variables",
                  "created_at", "updated_at"]

    def get_object(self, customer: Customer) -> str:
        return "customer"


def render_customer(customer: Customer) -> dict[str, Any]:
    return CustomerOutput(customer).data
