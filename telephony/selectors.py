"""Read-side queries of the telephony app: the filters of GET /v1/calls and /v1/phone-numbers.

Runs in the schema of the request's account (set by API-key authentication), so a
queryset here only ever sees that account's calls.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q, QuerySet

from telephony.models import Call, PhoneNumber, TwilioAccount


def list_calls(
    *,
    agent_id: str | None = None,
    customer_id: str | None = None,
    status: str | None = None,
    direction: str | None = None,
    phone_number: str | None = None,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
) -> QuerySet[Call]:
    """The account's calls matching every filter given (ordering is the paginator's).

    `phone_number` is our number on the call: the dialled number of an inbound call, the
    caller ID of an outbound one. The time bounds are exclusive.
    """
    queryset = Call.objects.all()
    if agent_id:
        queryset = queryset.filter(agent_id=agent_id)
    if customer_id:
        queryset = queryset.filter(customer_id=customer_id)
    if status:
        queryset = queryset.filter(status=status)
    if direction:
        queryset = queryset.filter(direction=direction)
    if phone_number:
        queryset = queryset.filter(
            Q(phone_number__phone_number=phone_number)
            | Q(direction=Call.INBOUND, to_number=phone_number)
            | Q(direction=Call.OUTBOUND, from_number=phone_number)
        )
    if created_after is not None:
        queryset = queryset.filter(created_at__gt=created_after)
    if created_before is not None:
        queryset = queryset.filter(created_at__lt=created_before)
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
