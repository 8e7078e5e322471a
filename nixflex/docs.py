"""The API description served with the OpenAPI document, error-code table included."""

from __future__ import annotations

from nixflex.errors import ERROR_CODES, TYPE_STATUS


def api_description() -> str:
    lines = [
        "Phone voice agents on your own Twilio numbers.",
        "",
        "Authenticate with `Authorization: Bearer KEY_ID:KEY_SECRET`. Lists are newest first: "
        '`?limit=1..100&starting_after=<id>` returns `{"data": [...], "has_more": bool}`.',
        "",
        "## Errors",
        'Every error is `{"error": {"type", "code", "message", "doc_url", "details"}}`. '
        "Branch on `code`, not on `message`.",
        "",
        "| type | HTTP status |",
        "|---|---|",
        *[f"| `{t}` | {s} |" for t, s in TYPE_STATUS.items()],
        "",
        "Twilio credentials: `twilio_invalid_credentials` means Twilio rejected the Account SID and auth "
        "token sent with the request (importing a number); `twilio_auth_failed` means Twilio answered "
        "error 20003 for credentials stored earlier (the token was rotated or the account closed) while "
        "acting on an imported number. Both carry `details.twilio_error` with Twilio's code and message. "
        "Twilio outages and timeouts are `provider_unavailable` (502): retry later.",
        "",
        "| code | type | status | meaning |",
        "|---|---|---|---|",
        *[f"| `{c.code}` | `{c.type}` | {c.status} | {c.message} |" for c in ERROR_CODES.values()],
    ]
    return "\n".join(lines)
