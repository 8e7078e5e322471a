"""Phone number and Twilio SID formats."""

from __future__ import annotations

import re

# E.164: "+", a country code, 8 to 15 digits in all, no leading zero.
E164_RE = r"^\+[1-9]\d{7,14}$"
_E164 = re.compile(E164_RE)
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")


def is_e164(value: object) -> bool:
    return isinstance(value, str) and bool(_E164.match(value))


def is_account_sid(value: object) -> bool:
    return isinstance(value, str) and bool(_ACCOUNT_SID.match(value))
