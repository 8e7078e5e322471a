"""Customers' own Twilio accounts: the credentials that all numbers of one Twilio account share.

A token is stored only after Twilio has accepted it (an import's lookup, or a rotation's
check), never returned, never logged.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from nixflex.errors import ApiError
from telephony.models import TwilioAccount
from telephony.selectors import list_twilio_accounts
from telephony.services.twilio_errors import twilio_api_errors
from telephony.twilio_client import TwilioGateway

logger = logging.getLogger(__name__)

# An import with the stored token refreshes verified_at at most this often (bulk imports
# run hundreds of rows of one Twilio account at once).
VERIFIED_AT_RESOLUTION = timedelta(minutes=1)


def get_twilio_account(account_sid: str) -> TwilioAccount:
    twilio_account = list_twilio_accounts().filter(account_sid=account_sid).first()
    if twilio_account is None:
        raise ApiError("twilio_account_not_found", details={"account_sid": account_sid})
    return twilio_account


def gateway_for(twilio_account: TwilioAccount) -> TwilioGateway:
    """Twilio, with the credentials stored for this account."""
    return TwilioGateway(twilio_account.account_sid, twilio_account.auth_token)


def remember_credentials(*, account_sid: str, auth_token: str) -> TwilioAccount:
    """The TwilioAccount for credentials that Twilio has just accepted: created, or given
    the new token if the customer rotated it (the same token changes nothing)."""
    now = timezone.now()
    twilio_account, created = TwilioAccount.objects.get_or_create(
        account_sid=account_sid, defaults={"auth_token": auth_token, "verified_at": now}
    )
    if created:
        return twilio_account
    if twilio_account.auth_token != auth_token:
        twilio_account.auth_token = auth_token
        twilio_account.verified_at = now
        twilio_account.save(update_fields=["auth_token", "verified_at", "updated_at"])
        logger.info("Twilio account %s: stored the new auth token sent with an import", account_sid)
    elif twilio_account.verified_at is None or now - twilio_account.verified_at > VERIFIED_AT_RESOLUTION:
        TwilioAccount.objects.filter(pk=twilio_account.pk).update(verified_at=now)
    return twilio_account


def rotate_credentials(*, twilio_account: TwilioAccount, auth_token: str) -> TwilioAccount:
    """Replace the account's auth token, for every one of its numbers at once, once Twilio
    has accepted it. A token Twilio refuses is `twilio_invalid_credentials` and nothing
    changes."""
    with twilio_api_errors(credentials_given=True):
        info = TwilioGateway(twilio_account.account_sid, auth_token).verify_credentials()
    twilio_account.auth_token = auth_token
    twilio_account.verified_at = timezone.now()
    fields = ["auth_token", "verified_at", "updated_at"]
    if not twilio_account.friendly_name and info.friendly_name:
        twilio_account.friendly_name = info.friendly_name[:200]
        fields.append("friendly_name")
    twilio_account.save(update_fields=fields)
    logger.info("Twilio account %s: auth token rotated", twilio_account.account_sid)
    return twilio_account


def update_twilio_account(*, twilio_account: TwilioAccount, friendly_name: str) -> TwilioAccount:
    twilio_account.friendly_name = friendly_name
    twilio_account.save(update_fields=["friendly_name", "updated_at"])
    return twilio_account


def delete_twilio_account(*, twilio_account: TwilioAccount) -> None:
    """Forget stored credentials that no number uses any more."""
    if twilio_account.phone_numbers.exists():
        raise ApiError("twilio_account_has_phone_numbers", details={"account_sid": twilio_account.account_sid})
    twilio_account.delete()
