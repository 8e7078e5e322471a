"""BYO Twilio numbers: import, change, remove, webhook drift (../shared/seeds/byo-twilio-numbers.txt).

An import runs the seed's steps in its order: validate formats (telephony.serializers,
before this module is called) -> find the number in the caller's Twilio account (exact
match) -> the agent belongs to this account -> point the number's webhooks at Nixflex ->
insert the row and its public route. Whether the number is already imported anywhere is
decided before Twilio is touched. Functions take plain values and return models.
"""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.services import get_owned_agent
from customers.services import get_customer
from nixflex.errors import ApiError
from telephony.models import PhoneNumber
from telephony.phone import is_e164
from telephony.services.twilio_accounts import gateway_for, remember_credentials
from telephony.services.twilio_errors import api_error, twilio_api_errors
from telephony.twilio_client import TwilioError, TwilioGateway, WebhookUrls
from tenants.models import Account, NumberRoute

logger = logging.getLogger(__name__)

# A reservation whose import died half-way stops blocking the number after this long.
STALE_RESERVATION = timedelta(minutes=10)


class Unchanged(enum.Enum):
    """A PATCH field that was not sent (None means "clear it")."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


@dataclass(frozen=True)
class Removal:
    """What DELETE did: whether Twilio stopped routing the number to us, and if it failed
    (and `force` removed the number anyway), what Twilio answered."""

    phone_number: str
    twilio_webhooks_cleared: bool
    forced: bool = False
    twilio_error: dict[str, Any] | None = None


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
    NumberRoute.objects.filter(
        phone_number=e164, account=account, reserved_by=reserved_by, state=NumberRoute.PENDING
    ).delete()


def import_number(
    *,
    account: Account,
    api_key_id: str,
    phone_number: str,
    twilio_sid: str,
    twilio_token: str,
    agent_id: str,
    customer_id: str | None = None,
    friendly_name: str = "",
    reserved_by: str | None = None,
) -> PhoneNumber:
    """POST /v1/phone-numbers, with well-formed values (telephony.serializers checked them).
    Runs inside the account's schema.

    The credentials sent are the ones Twilio is asked with. Once Twilio has accepted them
    they become the stored credentials of that Twilio account (for all its numbers): the
    same token changes nothing, a new one replaces the old (the customer rotated it)."""
    e164 = phone_number
    reserved_by = reserved_by or f"import:{uuid.uuid4().hex}"
    finished = _existing_route_conflict(account, e164, reserved_by)
    if finished is not None:
        return finished

    twilio = TwilioGateway(twilio_sid, twilio_token)
    with twilio_api_errors(credentials_given=True):
        twilio_number = twilio.find_number(e164)
    if twilio_number is None:
        raise ApiError("number_not_in_twilio", details={"phone_number": e164, "twilio_sid": twilio_sid})
    agent = get_owned_agent(account=account, agent_id=agent_id)
    customer = get_customer(customer_id) if customer_id else None

    _reserve(account, e164, reserved_by)
    urls = WebhookUrls.nixflex()
    try:
        with twilio_api_errors(credentials_given=True):
            twilio.point_webhooks(twilio_number.sid, urls)
        with transaction.atomic():
            number = PhoneNumber.objects.create(
                phone_number=e164,
                agent=agent,
                customer=customer,
                friendly_name=friendly_name,
                twilio_account=remember_credentials(account_sid=twilio_sid, auth_token=twilio_token),
                twilio_number_sid=twilio_number.sid,
                api_key_id=api_key_id,
                voice_url=urls.voice,
                sms_url=urls.sms,
                status_callback_url=urls.status,
                webhook_status=PhoneNumber.WEBHOOKS_OK,
                webhook_checked_at=timezone.now(),
            )
            NumberRoute.objects.filter(phone_number=e164, account=account).update(
                state=NumberRoute.ACTIVE, updated_at=timezone.now()
            )
    except BaseException:
        _release(account, e164, reserved_by)
        raise
    logger.info("imported %s onto %s (account %s)", e164, agent.id, account.schema_name)
    return number


def get_number(e164: str) -> PhoneNumber:
    if not is_e164(e164):  # the path form too: no lookup for "+44…\n" or non-ASCII digits
        raise ApiError(
            "invalid_phone_format", details={"field": "phone_number", "expected": "E.164, like +447446466847"}
        )
    number = PhoneNumber.objects.select_related("twilio_account").filter(phone_number=e164).first()
    if number is None:
        raise ApiError("phone_number_not_found", details={"phone_number": e164})
    return number


def update_number(
    *,
    number: PhoneNumber,
    agent_id: str | Unchanged = UNCHANGED,
    customer_id: str | None | Unchanged = UNCHANGED,
    friendly_name: str | Unchanged = UNCHANGED,
) -> PhoneNumber:
    """PATCH: customer and friendly name. Moving to another agent is refused (seed: delete
    first, then re-import)."""
    if agent_id is not UNCHANGED and agent_id != number.agent_id:
        raise ApiError(
            "number_already_imported",
            "This number is attached to another agent. Delete it first, then re-import it.",
            {"phone_number": number.phone_number, "agent_id": number.agent_id},
        )
    if not isinstance(friendly_name, Unchanged):
        number.friendly_name = friendly_name
    if not isinstance(customer_id, Unchanged):
        number.customer = get_customer(customer_id) if customer_id is not None else None
    number.save()
    return number


def delete_number(*, account: Account, number: PhoneNumber, force: bool = False) -> Removal:
    """Clear the number's webhooks in Twilio, then remove the row and its route. The number
    is never released from Twilio. If Twilio fails, nothing is removed, unless `force`:
    then the number is removed here anyway (its Twilio account may be closed, or its
    credentials gone), and the Removal says what Twilio answered."""
    try:
        cleared = gateway_for(number.twilio_account).clear_webhooks(number.twilio_number_sid)
    except TwilioError as exc:
        if not force:
            raise api_error(exc) from None
        logger.warning(
            "%s removed without clearing its webhooks (forced): twilio %s", number.phone_number, type(exc).__name__
        )
        removal = Removal(
            number.phone_number,
            twilio_webhooks_cleared=False,
            forced=True,
            twilio_error=exc.twilio_error or {"code": None, "message": exc.reason, "status": None},
        )
    else:
        if not cleared:
            logger.info(
                "%s is no longer in Twilio account %s; removing it", number.phone_number, number.twilio_account_sid
            )
        removal = Removal(number.phone_number, twilio_webhooks_cleared=cleared)
    with transaction.atomic():
        NumberRoute.objects.filter(phone_number=number.phone_number, account=account).delete()
        number.delete()
    return removal


def check_webhooks(number: PhoneNumber) -> PhoneNumber:
    """Does Twilio still send this number's calls and messages to Nixflex?"""
    try:
        twilio_number = gateway_for(number.twilio_account).fetch_number(number.twilio_number_sid)
    except TwilioError as error:
        logger.warning("webhook check of %s failed: %s", number.phone_number, type(error).__name__)
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
    with twilio_api_errors():
        gateway_for(number.twilio_account).point_webhooks(number.twilio_number_sid, urls)
    number.voice_url, number.sms_url, number.status_callback_url = urls.voice, urls.sms, urls.status
    number.webhook_status = PhoneNumber.WEBHOOKS_OK
    number.webhook_checked_at = timezone.now()
    number.save()
    return number
