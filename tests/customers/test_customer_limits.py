"""A customer's variables and opening hours go into every call's prompt: they are bounded."""

from __future__ import annotations

from typing import Any

import pytest

from customers import serializers as limits
from tests.conftest import Persona, assert_error


def _fields(response: Any) -> dict[str, Any]:
    return assert_error(response, 400, "invalid_request", "invalid_request")["details"]["fields"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("variables", {f"v{i}": "x" for i in range(limits.MAX_VARIABLES + 1)}),
        ("variables", {"k" * (limits.MAX_VARIABLE_NAME_CHARS + 1): "x"}),
        ("variables", {"": "x"}),
        ("variables", {"city": "x" * (limits.MAX_VARIABLE_VALUE_CHARS + 1)}),
        ("variables", {"list": ["x" * 100] * 20}),
        ("variables", {f"v{i}": "x" * 900 for i in range(12)}),  # each fine, together too large
        ("opening_hours", "x" * (limits.MAX_OPENING_HOURS_CHARS + 1)),
        ("opening_hours", {f"day{i}": "09:00-17:00" for i in range(limits.MAX_OPENING_HOURS_ENTRIES + 1)}),
        ("opening_hours", {"k" * (limits.MAX_OPENING_HOURS_KEY_CHARS + 1): "09:00-17:00"}),
        ("opening_hours", {"mon": "x" * limits.MAX_OPENING_HOURS_CHARS}),
    ],
)
def test_oversized_values_are_field_errors(alice: Persona, field: str, value: Any) -> None:
    fields = _fields(alice.client().post("/v1/customers", {"name": "Clinic", field: value}))
    assert set(fields) == {field}
    assert "at most" in str(fields[field]).lower() or "characters" in str(fields[field]).lower()


def test_a_long_variable_names_the_variable(alice: Persona) -> None:
    fields = _fields(
        alice.client().post(
            "/v1/customers",
            {"name": "Clinic", "variables": {"city": "Croydon", "notes": "x" * (limits.MAX_VARIABLE_VALUE_CHARS + 1)}},
        )
    )
    assert set(fields["variables"]) == {"notes"}


def test_patch_is_bounded_too(alice: Persona) -> None:
    client = alice.client()
    customer = client.post("/v1/customers", {"name": "Clinic"}).json()
    fields = _fields(
        client.patch(
            f"/v1/customers/{customer['id']}", {"variables": {f"v{i}": 1 for i in range(limits.MAX_VARIABLES + 1)}}
        )
    )
    assert set(fields) == {"variables"}


def test_values_at_the_limits_are_accepted(alice: Persona) -> None:
    variables = {f"v{i:02d}": "x" * 150 for i in range(limits.MAX_VARIABLES)}
    variables["k" * limits.MAX_VARIABLE_NAME_CHARS] = "y" * limits.MAX_VARIABLE_VALUE_CHARS
    variables.pop("v00")
    hours = {f"day{i}": "09:00-17:00" for i in range(limits.MAX_OPENING_HOURS_ENTRIES)}
    response = alice.client().post("/v1/customers", {"name": "Clinic", "variables": variables, "opening_hours": hours})
    assert response.status_code == 201, response.content
    assert response.json()["variables"] == variables
