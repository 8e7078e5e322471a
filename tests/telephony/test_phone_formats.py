"""E.164 is "+" and ASCII digits, the whole string: not Unicode digits, not a trailing newline."""

from __future__ import annotations

import pytest

from telephony.phone import is_account_sid, is_e164
from tests.conftest import Persona, assert_error

VALID = ["+447446466847", "+14155550100", "+12345678", "+123456789012345"]
INVALID = [
    "+447446466847\n",  # `$` matched before a trailing newline
    "+447446466847\r\n",
    "\n+447446466847",
    "+4٤٧٤٤٦٤٦٦٨٤٧",  # Arabic-Indic digits after the first: `\d` matched them
    "+44７４４６４６６８４７",  # fullwidth digits
    "+44७४४६४६६८४७",  # Devanagari
    "+٤٤٧٤٤٦٤٦٦٨٤٧",
    "+447446466847\x00",
    "+44 7446 466847",
    "447446466847",
    "+0447446466847",
    "+1234567",
    "+1234567890123456",
    "",
    "+",
]


@pytest.mark.parametrize("number", VALID)
def test_valid_numbers(number: str) -> None:
    assert is_e164(number)


@pytest.mark.parametrize("number", INVALID)
def test_invalid_numbers(number: str) -> None:
    assert not is_e164(number)


@pytest.mark.parametrize("sid", ["AC" + "a" * 32 + "\n", "AC" + "٣" * 32, " AC" + "a" * 32])
def test_account_sid_is_a_full_ascii_match(sid: str) -> None:
    assert not is_account_sid(sid) and is_account_sid("AC" + "a" * 32)


@pytest.mark.parametrize("number", [n for n in INVALID if n and "\x00" not in n])
def test_import_refuses_them_before_twilio(alice: Persona, twilio, number: str) -> None:
    before = len(twilio.requests())
    response = alice.client().post(
        "/v1/phone-numbers",
        {"phone_number": number, "twilio_sid": "AC" + "a" * 32, "twilio_token": "token", "agent_id": "agt_x"},
    )
    assert_error(response, 400, "invalid_request", "invalid_phone_format")
    assert len(twilio.requests()) == before


ARABIC_INDIC_DIGITS = "%2B4" + "".join(f"%D9%A{d}" for d in "47446466847")  # +4٤٧٤٤٦٤٦٦٨٤٧, percent-encoded


@pytest.mark.parametrize(
    "path", ["%2B447446466847%0A", "+447446466847%0A", ARABIC_INDIC_DIGITS, "%EF%BC%8B447446466847", "not-a-number"]
)
@pytest.mark.parametrize("method", ["get", "delete", "patch"])
def test_path_form_is_invalid_phone_format(alice: Persona, path: str, method: str) -> None:
    client = alice.client()
    url = f"/v1/phone-numbers/{path}"
    response = client.patch(url, {"friendly_name": "x"}) if method == "patch" else getattr(client, method)(url)
    assert_error(response, 400, "invalid_request", "invalid_phone_format")


def test_customer_transfer_number_is_checked_the_same_way(alice: Persona) -> None:
    for number in ("+4٤٢٠١١١١٠٠٠٩", "+44２０１１１１０００９", "+44 20 1111 0009"):
        response = alice.client().post("/v1/customers", {"name": "Clinic", "transfer_number": number})
        error = assert_error(response, 400, "invalid_request", "invalid_request")
        assert set(error["details"]["fields"]) == {"transfer_number"}
    # Surrounding whitespace is trimmed by the field: what is stored is the bare number.
    stored = alice.client().post("/v1/customers", {"name": "Clinic", "transfer_number": "+442011110009\n"})
    assert stored.json()["transfer_number"] == "+442011110009"
