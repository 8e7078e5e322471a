"""What the media stream needs from the database: the call's context, loaded once when
the stream starts, and its outcome, written once when it ends. Sync functions; the
consumer runs them through database_sync_to_async inside the account's schema."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from agents.engine.conversation import CallSetup, Outcome
from agents.prompts import CallContext, PastCall, build_system_prompt, render_template, tools_for
from telephony import concurrency
from telephony.models import Call
from telephony.services.calls import stream_url
from telephony.twilio_client import CallControl, TwilioGateway, is_valid_signature
from tenants.models import Account

logger = logging.getLogger(__name__)

HISTORY_CALLS = 5


class StreamRefused(Exception):
    pass


@dataclass(frozen=True)
class LiveCall:
    setup: CallSetup
    control: CallControl


def open_live_call(*, schema_name: str, call_id: str, signature: str) -> LiveCall:
    """The call's context for the engine. `signature` is the upgrade's X-Twilio-Signature,
    required, and checked over our own stream URL (as Twilio signed it)."""
    with schema_context(schema_name):
        call = Call.objects.select_related("agent", "customer", "phone_number").filter(id=call_id).first()
        if call is None or call.agent is None or call.phone_number is None:
            raise StreamRefused("unknown call")
        if call.status in Call.TERMINAL:
            raise StreamRefused(f"call is {call.status}")
        number = call.phone_number
        if not signature or not is_valid_signature(number.twilio_auth_token, stream_url(), {}, signature):
            raise StreamRefused("missing or bad signature on the stream upgrade")
        agent, customer = call.agent, call.customer
        variables = customer.template_variables() if customer else {}
        history = tuple(PastCall(at=past.created_at, summary=past.summary) for past in _earlier_calls(call))
        context = CallContext(
            caller_number=call.from_number,
            dialled_number=call.to_number,
            variables=variables,
            timezone=customer.timezone if customer else "UTC",
            history=history,
            can_transfer=bool(customer and customer.transfer_number),
        )
        setup = CallSetup(
            call_id=call.id,
            schema_name=schema_name,
            system_prompt=build_system_prompt(agent.system_prompt, context, timezone.now()),
            tools=tools_for(context),
            first_message=render_template(agent.first_message, variables),
            model=agent.model,
            voice_id=agent.voice_id,
            language=agent.language,
            endpointing_ms=agent.endpointing_ms,
            utterance_end_ms=agent.utterance_end_ms,
            silence_timeout_seconds=agent.silence_timeout_seconds,
            max_call_seconds=agent.max_call_seconds,
            transfer_number=customer.transfer_number if customer else "",
        )
        gateway = TwilioGateway(number.twilio_account_sid, number.twilio_auth_token)
        # The stream is real: the call's short admission lease becomes a renewed one.
        refused = concurrency.hold_for_stream(
            schema_name=schema_name,
            call_id=call.id,
            account_limit=_account_limit(schema_name),
            max_call_seconds=agent.max_call_seconds,
        )
        if refused is not None:
            raise StreamRefused(f"no call slot ({refused})")
        try:
            Call.objects.filter(pk=call.pk, status__in=[Call.QUEUED, Call.RINGING]).update(
                status=Call.IN_PROGRESS, answered_at=timezone.now()
            )
        except Exception:
            concurrency.release(schema_name=schema_name, call_id=call.id)
            raise
        return LiveCall(setup=setup, control=CallControl(gateway, call.twilio_call_sid))


def _earlier_calls(call: Call) -> list[Call]:
    """The caller's earlier calls with the same end-customer (one clinic), or with the same
    number when it serves no customer: never another clinic's calls of the account."""
    scope: dict[str, Any] = (
        {"customer_id": call.customer_id}
        if call.customer_id
        else {"phone_number_id": call.phone_number_id, "customer__isnull": True}
    )
    return list(
        Call.objects.filter(from_number=call.from_number, **scope)
        .exclude(id=call.id)
        .exclude(summary="")
        .order_by("-created_at")[:HISTORY_CALLS]
    )


def _account_limit(schema_name: str) -> int:
    account = Account.objects.only("max_concurrent_calls").get(schema_name=schema_name)
    return account.max_concurrent_calls


def close_live_call(*, schema_name: str, call_id: str, outcome: Outcome) -> None:
    """Free the call's slot, save the transcript and per-turn metrics, queue the summary."""
    from telephony.tasks import summarize_call

    # First: the call is over, and its slot is free whatever happens to the writes below.
    concurrency.release(schema_name=schema_name, call_id=call_id)
    with schema_context(schema_name), transaction.atomic():
        call = Call.objects.select_for_update().get(id=call_id)
        call.transcript = outcome.transcript
        call.turns = outcome.turns
        call.end_reason = call.end_reason or outcome.end_reason
        call.ended_at = call.ended_at or timezone.now()
        if call.status not in Call.TERMINAL:
            call.status = Call.COMPLETED
        if call.duration_seconds is None and call.answered_at:
            call.duration_seconds = int((call.ended_at - call.answered_at).total_seconds())
        has_speech = any(entry["role"] == "caller" for entry in outcome.transcript)
        call.summary_status = "pending" if has_speech else "none"
        call.save()
        if has_speech:
            transaction.on_commit(lambda: summarize_call.delay(call_id))
