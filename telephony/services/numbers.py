"""BYO Twilio numbers: import, change, remove, webhook drift (../shared/seeds/byo-twilio-numbers.txt).

An import runs the seed's steps in its order: validate formats -> find the number in the
caller's Twilio account (exact match) -> the agent belongs to this account -> point the
number's webhooks at Nixflex -> insert the row and its public route. Whether the number
is already imported anywhere is decided before Twilio is touched.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.services import get_owned_agent
from customers.services import get_customer
from nixflex.errors import ApiError
from telephony.models import PhoneNumber
from telephony.phone import is_account_sid, is_e164
from telephony.twilio_client import TwilioGateway, WebhookUrls
from tenants.models import Account, NumberRoute

logger = logging.getLogger(__name__)

# A reservation whose import died half-way stops blocking the number after this long.
STALE_RESERVATION = timedelta(minutes=10)
IMPORT_FIELDS = ("phone_number", "twilio_sid", "twilio_token", "agent_id")


def render_number(number: PhoneNumber) -> dict[str, Any]:
    return {
        "object": "phone_number",
        "phone_number": number.phone_number,
        "agent_id": number.agent_id,
        "customer_id": number.customer_id,
        "friendly_name": number.friendly_name,
        "twilio_sid": number.twilio_account_sid,
        "twilio_number_sid": number.twilio_number_sid,
        "voice_url": number.voice_url,
        "sms_url": number.sms_url,
        "status_callback_url": number.status_callback_url,
        "status": "active",
        "webhook_status": number.webhook_status,
        "webhook_checked_at": number.webhook_checked_at,
        "api_key_id": number.api_key_id,
        "created_at": number.created_at,
    }


def _validate_import(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ApiError("invalid_request", "Expected a JSON object.", {"reason": "not_an_object"})
    missing = {name: ["This field is required."] for name in IMPORT_FIELDS
               if not isinstance(data.get(name), str) or not data.get(name)}
    for name in ("customer_id", "friendly_name"):
        if data.get(name) is not None and not isinstance(data.get(name), str):
            missing[name] = ["Expected a string."]
    if isinstance(data.get("friendly_name"), str) and len(data["friendly_name"]) > 200:
        missing["friendly_name"] = ["At most 200 characters."]
    if missing:
        raise ApiError("invalid_request", f"Invalid or missing parameters: {', '.join(sorted(missing))}.",
                       {"fields": missing})
    if not is_e164(data["phone_number"]):
        raise ApiError("invalid_phone_format", details={"field": "phone_number", "expected": "E.164, like +447446466847"})
    if not is_account_sid(data["twilio_sid"]):
        raise ApiError("invalid_twilio_sid", details={"field": "twilio_sid", "expected": "AC followed by 32 hex characters"})
    return data


def _existing_route_conflict(account: Account, e164: str, reserved_by: str) -> PhoneNumber | None:
    """Raise number_already_imported if the number is taken; return the number if this very
    reservation already finished importing it (a retried bulk row)."""
    route = NumberRoute.objects.filter(phone_number=e164).first()
    if route is None:
        return None
    if route.account_id == account.pk and reserved_by and route.reserved_by == reserved_by:
        if route.state == NumberRoute.ACTIVE:
            return PhoneNumber.objects.filter(phone_number=e164).first()
        return None  # our own pending reservation: carry on
    if route.state == NumberRoute.PENDING and timezone.now() - route.updated_at > STALE_RESERVATION:
        return None  # an abandoned reservation: _reserve takes it over
    details: dict[str, Any] = {"phone_number": e164}
    if route.account_id == account.pk:
        number = PhoneNumber.objects.filter(phone_number=e164).first()
        if number is not None:
            details["agent_id"] = number.agent_id
    raise ApiError("number_already_imported", details=details)


def _reserve(account: Account, e164: str, reserved_by: str) -> None:
    """Commit a pending route before Twilio is changed: of two concurrent imports of one
    number, the second fails here."""
    try:
        with transaction.atomic():
            NumberRoute.objects.create(phone_number=e164, account=account, reserved_by=reserved_by)
            return
    except IntegrityError:
        pass
    with transaction.atomic():
        route = NumberRoute.objects.select_for_update().filter(phone_number=e164).first()
        if route is None:  # released meanwhile
            NumberRoute.objects.create(phone_number=e164, account=account, reserved_by=reserved_by)
            return
        mine = route.account_id == account.pk and route.reserved_by == reserved_by
        stale = route.state == NumberRoute.PENDING and timezone.now() - route.updated_at > STALE_RESERVATION
        if not (mine or stale):
            raise ApiError("number_already_imported", details={"phone_number": e164})
        route.account, route.reserved_by, route.state = account, reserved_by, NumberRoute.PENDING
        route.save()


def _release(account: Account, e164: str, reserved_by: str) -> None:
    NumberRoute.objects.filter(phone_number=e164, account=account, reserved_by=reserved_by,
                               state=NumberRoute.PENDING).delete()


def import_number(*, account: Account, api_key_id: str, data: Any, reserved_by: str | None = None) -> PhoneNumber:
    """POST /v1/phone-numbers. Runs inside the account's schema."""
    data = _validate_import(data)
    e164 = data["phone_number"]
    reserved_by = reserved_by or f"import:{uuid.uuid4().hex}"
    finished = _existing_route_conflict(account, e164, reserved_by)
    if finished is not None:
        return finished

    twilio = TwilioGateway(data["twilio_sid"], data["twilio_token"], stored_credentials=False)
    twilio_number = twilio.find_number(e164)
    if twilio_number is None:
        raise ApiError("number_not_in_twilio", details={"phone_number": e164, "twilio_sid": data["twilio_sid"]})
    agent = get_owned_agent(account=account, agent_id=data["agent_id"])
    customer = get_customer(data["customer_id"]) if data.get("customer_id") else None

    _reserve(account, e164, reserved_by)
    urls = WebhookUrls.nixflex()
    try:
        twilio.point_webhooks(twilio_number.sid, urls)
        with transaction.atomic():
            number = PhoneNumber.objects.create(
                phone_number=e164, agent=agent, customer=customer, friendly_name=data.get("friendly_name") or "",
                twilio_account_sid=data["twilio_sid"], twilio_number_sid=twilio_number.sid,
                twilio_auth_token=data["twilio_token"], api_key_id=api_key_id,
                voice_url=urls.voice, sms_url=urls.sms, status_callback_url=urls.status,
                webhook_status=PhoneNumber.WEBHOOKS_OK, webhook_checked_at=timezone.now(),
            )
            NumberRoute.objects.filter(phone_number=e164, account=account).update(
                state=NumberRoute.ACTIVE, updated_at=timezone.now())
    except BaseException:
        _release(account, e164, reserved_by)
        raise
    logger.info("imported %s onto %s (account %s)", e164, agent.id, account.schema_name)
    return number


def get_number(e164: str) -> PhoneNumber:
    if not is_e164(e164):  # the path form too: no lookup for "+44…\n" or non-ASCII digits
        raise ApiError("invalid_phone_format", details={"field": "phone_number", "expected": "E.164, like +447446466847"})
    number = PhoneNumber.objects.filter(phone_number=e164).first()
    if number is None:
        raise ApiError("phone_number_not_found", details={"phone_number": e164})
    return number


def update_number(*, number: PhoneNumber, data: Any) -> PhoneNumber:
    """PATCH: customer and friendly name. Moving to another agent is refused (seed: delete
    first, then re-import)."""
    if not isinstance(data, dict):
        raise ApiError("invalid_request", "Expected a JSON object.", {"reason": "not_an_object"})
    if "agent_id" in data and data["agent_id"] != number.agent_id:
        raise ApiError("number_already_imported",
                       "This number is attached to another agent. Delete it first, then re-import it.",
                       {"phone_number": number.phone_number, "agent_id": number.agent_id})
    unknown = set(data) - {"customer_id", "friendly_name", "agent_id"}
    if unknown:
        raise ApiError("invalid_request", f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
                       {"fields": {name: ["Cannot be changed."] for name in sorted(unknown)}})
    if "friendly_name" in data:
        if not isinstance(data["friendly_name"], str) or len(data["friendly_name"]) > 200:
            raise ApiError("invalid_request", "friendly_name must be a string of at most 200 characters.",
                           {"fields": {"friendly_name": ["Expected a string of at most 200 characters."]}})
        number.friendly_name = data["friendly_name"]
    if "customer_id" in data:
        if data["customer_id"] is None:
            number.customer = None
        elif isinstance(data["customer_id"], str):
            number.customer = get_customer(data["customer_id"])
        else:
            raise ApiError("invalid_request", "customer_id must be a string or null.",
                           {"fields": {"customer_id": ["Expected a string or null."]}})
    number.save()
    return number


def _stored_gateway(number: PhoneNumber) -> TwilioGateway:
    return TwilioGateway(number.twilio_account_sid, number.twilio_auth_token, stored_credentials=True)


def delete_number(*, account: Account, number: PhoneNumber) -> None:
    """Clear the number's webhooks in Twilio, then remove the row and its route. The number
    is never released from Twilio. If Twilio cannot be reached, nothing is removed."""
    still_in_twilio = _stored_gateway(number).clear_webhooks(number.twilio_number_sid)
    if not still_in_twilio:
        logger.info("%s is no longer in Twilio account %s; removing it", number.phone_number,
                    number.twilio_account_sid)
    with transaction.atomic():
        NumberRoute.objects.filter(phone_number=number.phone_number, account=account).delete()
        number.delete()


def check_webhooks(number: PhoneNumber) -> PhoneNumber:
    """Does Twilio still send this number's calls and messages to Nixflex?"""
    try:
        twilio_number = _stored_gateway(number).fetch_number(number.twilio_number_sid)
    except ApiError as error:
        logger.warning("webhook check of %s failed: %s", number.phone_number, error.code)
        status = PhoneNumber.WEBHOOKS_UNKNOWN
    else:
        if twilio_number is None:
            status = PhoneNumber.WEBHOOKS_MISSING
        elif twilio_number.points_at(WebhookUrls.nixflex()):
            status = PhoneNumber.WEBHOOKS_OK
        else:
            status = PhoneNumber.WEBHOOKS_DRIFTED
    number.webhook_status = status
    number.webhook_checked_at = timezone.now()
    number.save(update_fields=["webhook_status", "webhook_checked_at", "updated_at"])
    return number


def repair_webhooks(number: PhoneNumber) -> PhoneNumber:
    """Point the number's webhooks back at Nixflex (after drift)."""
    urls = WebhookUrls.nixflex()
    _stored_gateway(number).point_webhooks(number.twilio_number_sid, urls)
    number.voice_url, number.sms_url, number.status_callback_url = urls.voice, urls.sms, urls.status
    number.webhook_status = PhoneNumber.WEBHOOKS_OK
    number.webhook_checked_at = timezone.now()
    number.save()
    return number
