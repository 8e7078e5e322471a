"""The system prompt of a call: customer variables, call context, caller history."""

from datetime import datetime, timezone

from agents.prompts import CallContext, PastCall, build_system_prompt, render_template, tools_for


def test_placeholders_are_filled_and_unknown_ones_removed() -> None:
    text = render_template("Hi from {{clinic_name}} in {{ city }}{{nope}}!", {"clinic_name": "Smile", "city": "Leeds"})
    assert text == "Hi from Smile in Leeds!"


def test_prompt_has_context_history_and_local_time() -> None:
    context = CallContext(caller_number="+447700900123", dialled_number="+442011110001",
                          variables={"clinic_name": "Bright Bite", "customer_name": "Bright Bite"},
                          timezone="Europe/London", can_transfer=True,
                          history=(PastCall(at=datetime(2026, 11, 20, tzinfo=timezone.utc), summary="Booked a cleaning."),))
    prompt = build_system_prompt("You answer for {{clinic_name}}.", context,
                                 datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc))
    assert prompt.startswith("You answer for Bright Bite.")
    assert "+447700900123" in prompt and "13:00 (Europe/London)" in prompt
    assert "- 2026-11-20: Booked a cleaning." in prompt
    assert [t["name"] for t in tools_for(context)] == ["end_call", "transfer_call"]
    assert [t["name"] for t in tools_for(CallContext("+1", "+2"))] == ["end_call"]
