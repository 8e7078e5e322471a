"""Phone number and Twilio SID formats.

Full matches over ASCII only: `\\d` would accept Arabic-Indic or fullwidth digits, and `$`
would accept a trailing newline, neither of which Twilio (or a database lookup) knows.
"""

from __future__ import annotations

import re

# E.164: "+", a country code (never 0), 8 to 15 ASCII digits in all.
E164_PATTERN = r"\+[1-9][0-9]{7,14}"
# For validators that search rather than full-match (DRF's RegexField): anchored at both ends.
E164_RE = rf"\A{E164_PATTERN}\Z"
_E164 = re.compile(E164_PATTERN)
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")


def is_e164(value: object) -> bool:
    return isinstance(value, str) and _E164.fullmatch(value) is not None


def is_account_sid(value: object) -> bool:
    return isinstance(value, str) and _ACCOUNT_SID.fullmatch(value) is not None
