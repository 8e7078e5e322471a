"""Calls: answering Twilio's voice webhook, status callbacks, and call records.

Twilio webhooks arrive on the public host: the account comes from the public number
route (`To` for inbound), the signature is checked with that number's own Twilio auth
token over the URL built from PUBLIC_BASE_URL, and nothing is written before it passes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from nixflex.errors import ApiError
from telephony import concurrency, stream_tokens
from telephony.models import Call, PhoneNumber
from telephony.twilio_client import is_valid_signature, say_and_hang_up_twiml, stream_twiml
from tenants.models import Account, NumberRoute

logger = logging.getLogger(__name__)

NOT_IN_SERVICE = "Sorry, the number you have called is not in service. Goodbye."
LINES_BUSY = "Sorry, all our lines are busy right now. Please call again in a few minutes. Goodbye."
MEDIA_PATH = "/media"


class WebhookForbidden(Exception):
    """A Twilio webhook whose signature does not check out."""


@dataclass(frozen=True)
class WebhookAnswer:
    twiml: str
    call_id: str | None = None


def _say_and_hang_up(text: str) -> str:
    return say_and_hang_up_twiml(text)


def stream_url() -> str:
    base = settings.PUBLIC_BASE_URL
    scheme, _, rest = base.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{MEDIA_PATH}"


def _stream_twiml(call: Call, schema_name: str) -> str:
    return stream_twiml(
        stream_url(), {"call_id": call.id, "token": stream_tokens.issue(call_id=call.id, schema_name=schema_name)}
    )


def _route(e164: str) -> NumberRoute | None:
    return (
        NumberRoute.objects.select_related("account")
        .filter(phone_number=e164, state=NumberRoute.ACTIVE, account__is_active=True)
        .first()
    )


def _check_signature(number: PhoneNumber, url: str, params: Mapping[str, str], signature: str) -> None:
    if not is_valid_signature(number.twilio_auth_token, url, params, signature):
        raise WebhookForbidden(f"bad Twilio signature for {number.phone_number}")
    if params.get("AccountSid") and params["AccountSid"] != number.twilio_account_sid:
        raise WebhookForbidden("AccountSid does not own this number")


def answer_inbound_call(*, params: Mapping[str, str], signature: str, url: str) -> WebhookAnswer:
    """POST /twilio/voice: TwiML that connects the call to the agent's media stream."""
    to = params.get("To", "")
    route = _route(to)
    if route is None:
        logger.info("inbound call to %s: no such number", to)
        return WebhookAnswer(_say_and_hang_up(NOT_IN_SERVICE))
    account = route.account
    with tenant_context(account):
        number = PhoneNumber.objects.select_related("agent", "customer").filter(phone_number=to).first()
        if number is None:
            return WebhookAnswer(_say_and_hang_up(NOT_IN_SERVICE))
        _check_signature(number, url, params, signature)
        call_sid = params.get("CallSid", "")
        call = Call.objects.filter(twilio_call_sid=call_sid).first()
        if call is None:
            try:
                with transaction.atomic():
                    call = Call.objects.create(
                        twilio_call_sid=call_sid,
                        direction=Call.INBOUND,
                        from_number=params.get("From", ""),
                        to_number=to,
                        phone_number=number,
                        agent=number.agent,
                        customer=number.customer,
                        status=Call.RINGING,
                    )
            except IntegrityError:  # the same webhook delivered twice at once
                call = Call.objects.get(twilio_call_sid=call_sid)
        if call.phone_number_id != number.id:
            # Another number's CallSid, signed with this number's token: a number's token
            # vouches for its own calls only (not another clinic's of the same account).
            raise WebhookForbidden(f"call {call_sid} is not a call to {number.phone_number}")
        if call.status in Call.TERMINAL:  # a retried webhook for a call we refused or that ended
            return WebhookAnswer(_say_and_hang_up(LINES_BUSY), call.id)
        # A short slot until the media stream starts (idempotent: a retried webhook keeps it).
        full = concurrency.admit(
            schema_name=account.schema_name, call_id=call.id, account_limit=account.max_concurrent_calls
        )
        if full is not None:
            logger.warning("call %s rejected: no call slot (%s)", call.id, full)
            Call.objects.filter(pk=call.pk).update(
                status=Call.REJECTED,
                rejection_reason=Call.CONCURRENT_CALL_LIMIT,
                end_reason=full,
                ended_at=timezone.now(),
            )
            return WebhookAnswer(_say_and_hang_up(LINES_BUSY), call.id)
        return WebhookAnswer(_stream_twiml(call, account.schema_name), call.id)


def record_status(*, params: Mapping[str, str], signature: str, url: str) -> None:
    """POST /twilio/status: idempotent, and never moves a call's status backwards.

    The call is found through our number on either side (`To` inbound, `From` outbound),
    and the callback must be signed with the token of the call's own number: a number's
    token vouches for that number's calls only, not for other calls of its account."""
    call_sid = params.get("CallSid", "")
    not_its_number = ""
    for e164 in (params.get("To", ""), params.get("From", "")):
        route = _route(e164)
        if route is None:
            continue
        with tenant_context(route.account):
            call = Call.objects.select_related("phone_number").filter(twilio_call_sid=call_sid).first()
            if call is None:
                continue
            number = call.phone_number
            if number is None:  # its number was removed: nothing left to verify the callback with
                logger.info("status callback for call %s whose number is gone: ignored", call.id)
                return
            if number.phone_number != e164:
                not_its_number = e164  # the other side may still be the call's number
                continue
            _check_signature(number, url, params, signature)
            _apply_status(route.account, call, params)
            return
    if not_its_number:
        raise WebhookForbidden(f"status callback for call {call_sid} through {not_its_number}, not its number")
    logger.info("status callback for unknown call %s", call_sid)


def _apply_status(account: Account, call: Call, params: Mapping[str, str]) -> None:
    status = params.get("CallStatus", "")
    if status not in Call.STATUS_RANK:
        return
    with transaction.atomic():
        call = Call.objects.select_for_update().get(pk=call.pk)
        if Call.STATUS_RANK[status] <= Call.STATUS_RANK.get(call.status, 0) and not (
            status in Call.TERMINAL and call.status not in Call.TERMINAL
        ):
            # Same or older news. A terminal status may still carry the duration.
            if status == call.status and call.duration_seconds is None and params.get("CallDuration", "").isdigit():
                call.duration_seconds = int(params["CallDuration"])
                call.save(update_fields=["duration_seconds", "updated_at"])
            return
        call.status = status
        fields = ["status", "updated_at"]
        if status == Call.IN_PROGRESS and call.answered_at is None:
            call.answered_at = timezone.now()
            fields.append("answered_at")
        if status in Call.TERMINAL:
            call.ended_at = call.ended_at or timezone.now()
            fields.append("ended_at")
            if params.get("CallDuration", "").isdigit():
                call.duration_seconds = int(params["CallDuration"])
                fields.append("duration_seconds")
        call.save(update_fields=fields)
    if status in Call.TERMINAL:
        concurrency.release(schema_name=account.schema_name, call_id=call.id)


def get_call(call_id: str) -> Call:
    call = Call.objects.filter(id=call_id).first()
    if call is None:
        raise ApiError("call_not_found", details={"call_id": call_id})
    return call


def write_summary(call_id: str, *, last_attempt: bool) -> None:
    """The post-call job: Claude summarises the call and fills the agent's extraction fields.

    Raises LlmFailure when Claude failed and this is not the last attempt (the task retries).
    On the last attempt, or on any other error, the summary ends `failed`, never `pending`.
    """
    from agents.anthropic_client import LlmFailure
    from agents.summaries import summarize_transcript

    call = Call.objects.select_related("agent").filter(id=call_id).first()
    if call is None or call.summary_status in (Call.SummaryStatus.DONE, Call.SummaryStatus.FAILED):
        return
    model = call.agent.model if call.agent else settings.DEFAULT_CLAUDE_MODEL
    fields = list(call.agent.extraction_fields) if call.agent else []
    try:
        summary, extraction = summarize_transcript(model=model, transcript=call.transcript, fields=fields)
    except LlmFailure as exc:
        if not last_attempt:
            raise
        logger.warning("summary of call %s failed for good: %s", call_id, exc)
        Call.objects.filter(pk=call.pk).update(summary_status=Call.SummaryStatus.FAILED, updated_at=timezone.now())
        return
    except Exception:
        logger.exception("summary of call %s failed", call_id)
        Call.objects.filter(pk=call.pk).update(summary_status=Call.SummaryStatus.FAILED, updated_at=timezone.now())
        return
    Call.objects.filter(pk=call.pk).update(
        summary=summary, extraction=extraction, summary_status=Call.SummaryStatus.DONE, updated_at=timezone.now()
    )
