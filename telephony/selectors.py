"""Read-side queries of the telephony app: the filters of GET /v1/calls and /v1/phone-numbers.

Runs in the schema of the request's account (set by API-key authentication), so a
queryset here only ever sees that account's calls.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Mapping

from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from nixflex.errors import ApiError
from telephony.models import Call, PhoneNumber, TwilioAccount

CALL_STATUSES = tuple(Call.STATUS_RANK)
CALL_DIRECTIONS = (Call.INBOUND, Call.OUTBOUND)
# An unencoded "+" in a query string arrives as a space: "+00:00" -> " 00:00".
_SPACE_OFFSET = re.compile(r" (\d{2}(?::?\d{2})?)$")


def _invalid(field: str, problem: str) -> ApiError:
    return ApiError("invalid_request", f"Invalid {field}: {problem}", {"fields": {field: [problem]}})


def parse_timestamp(field: str, raw: str) -> dt.datetime:
    """ISO 8601 (`2026-11-22T15:04:05Z`, with an offset, or a bare date); naive means UTC."""
    value = _SPACE_OFFSET.sub(r"+\1", raw.strip())
    try:
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            parsed = dt.datetime.combine(day, dt.time()) if day is not None else None
    except ValueError:  # well formed but impossible, like 2026-02-30
        parsed = None
    if parsed is None:
        raise _invalid(field, f"Expected an ISO 8601 date-time like 2026-11-22T15:04:05Z, got {raw!r}.")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.timezone.utc)
    return parsed


def _phone(raw: str) -> str:
    # A raw "+447446466847" in a query string arrives as " 447446466847".
    value = raw.strip()
    if raw.startswith(" ") and value.isdigit():
        value = f"+{value}"
    return value


def list_calls(params: Mapping[str, str]) -> QuerySet[Call]:
    """The account's calls matching the query's filters (ordering is the paginator's).

    Filters: agent_id, customer_id, status, direction, phone_number (our number on the
    call: the dialled number of an inbound call, the caller ID of an outbound one),
    created_after / created_before (ISO 8601, exclusive bounds).
    """
    queryset = Call.objects.all()
    for name in ("agent_id", "customer_id"):
        if params.get(name):
            queryset = queryset.filter(**{name: params[name]})
    if params.get("status"):
        if params["status"] not in CALL_STATUSES:
            raise _invalid("status", f"Expected one of {', '.join(CALL_STATUSES)}, got {params['status']!r}.")
        queryset = queryset.filter(status=params["status"])
    if params.get("direction"):
        if params["direction"] not in CALL_DIRECTIONS:
            raise _invalid("direction", f"Expected inbound or outbound, got {params['direction']!r}.")
        queryset = queryset.filter(direction=params["direction"])
    if params.get("phone_number"):
        number = _phone(params["phone_number"])
        queryset = queryset.filter(
            Q(phone_number__phone_number=number)
            | Q(direction=Call.INBOUND, to_number=number)
            | Q(direction=Call.OUTBOUND, from_number=number)
        )
    if params.get("created_after"):
        queryset = queryset.filter(created_at__gt=parse_timestamp("created_after", params["created_after"]))
    if params.get("created_before"):
        queryset = queryset.filter(created_at__lt=parse_timestamp("created_before", params["created_before"]))
    return queryset


def list_numbers(*, agent_id: str | None = None, customer_id: str | None = None) -> QuerySet[PhoneNumber]:
    """GET /v1/phone-numbers: this account's numbers, optionally of one agent or customer."""
    queryset = PhoneNumber.objects.select_related("twilio_account")
    if agent_id:
        queryset = queryset.filter(agent_id=agent_id)
    if customer_id:
        queryset = queryset.filter(customer_id=customer_id)
    return queryset


def list_twilio_accounts() -> QuerySet[TwilioAccount]:
    """GET /v1/twilio-accounts: the Twilio accounts this account's numbers belong to."""
    return TwilioAccount.objects.annotate(phone_number_count=Count("phone_numbers"))
