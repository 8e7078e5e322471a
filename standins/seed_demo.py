"""Seed the demo account against a running server (what `make run` does after it starts).

    python -m standins.seed_demo --server http://127.0.0.1:8000 \\
        [--twilio-standin http://127.0.0.1:18010] [--anthropic-standin http://127.0.0.1:18012]

Prints one JSON object: schema_name, domain, agent_id, key_id, key_secret, and with a Twilio
stand-in the demo clinic's phone_number. Safe to run again and again, on a fresh database
or one that an earlier run seeded: the account and agent are reused, a fresh key is issued.

The account and its key are made in this process (accounts have no public API); the rest
goes through the public API with that key, as a customer would. The stand-ins keep nothing
between starts while the database keeps the demo number, so the Twilio stand-in is first
told about the number (with the SID the database already knows, when there is one), then
the number's webhooks are imported or repaired through the API.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import Any

import requests

DEMO_ACCOUNT_NAME = "Ringback Demo"
DEMO_AGENT_NAME = "Ringback Dental Receptionist"
DEMO_PROMPT = (
    "You are the friendly receptionist of {{clinic_name}}, a dental clinic in {{city}}. "
    "Opening hours: {{opening_hours}}. Help callers book, move or cancel appointments, "
    "answer questions about the clinic, and keep answers short: this is a phone call."
)
DEMO_FIRST_MESSAGE = "Thanks for calling {{clinic_name}}, how can I help you today?"
DEMO_CLINIC = {
    "name": "Smile Dental Croydon",
    "timezone": "Europe/London",
    "address": "1 High Street, Croydon",
    "opening_hours": {"mon-fri": "09:00-17:30", "sat": "09:00-12:00"},
    "variables": {"city": "Croydon"},
}
DEMO_NUMBER = "+442011110001"
# What the offline Claude stand-in answers in the demo (first matching rule wins).
DEMO_CLAUDE_SCRIPT = [
    {
        "system_contains": "summarise phone calls",
        "text": '{"summary": "The caller booked a cleaning for Tuesday morning.", "extraction": '
        '{"caller_name": null, "reason_for_calling": "cleaning", "appointment_wanted": "Tuesday morning"}}',
    },
    {
        "match": "goodbye",
        "text": "You're welcome. See you on Tuesday, goodbye!",
        "tool": {"name": "end_call", "input": {}},
    },
    {"match": "tuesday", "text": "Tuesday at ten in the morning is free. Shall I book that for you?"},
    {"match": "book", "text": "Of course, I can book a cleaning for you. What day suits you best?"},
    {"match": "open", "text": "We're open nine to half past five on weekdays, and Saturday mornings."},
]
TIMEOUT_SECONDS = 30


class SeedError(Exception):
    """The demo could not be seeded; the message says which step and what answered."""


def demo_twilio_credentials() -> tuple[str, str]:
    """The demo's Twilio account: the same every run, so the token stored with the number
    keeps matching the stand-in's."""
    return (
        "AC" + hashlib.sha256(b"nixflex-demo-account").hexdigest()[:32],
        hashlib.sha256(b"nixflex-demo-token").hexdigest()[:32],
    )


class Api:
    """The public API of the running server, with the demo key."""

    def __init__(self, server: str, bearer: str) -> None:
        self.server = server.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {bearer}"

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> tuple[int, Any]:
        response = self.session.request(method, f"{self.server}{path}", json=body, timeout=TIMEOUT_SECONDS)
        if response.status_code not in ok:
            raise SeedError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.status_code, response.json()

    def find(self, path: str, **match: Any) -> dict[str, Any] | None:
        """The newest object of a list whose fields equal `match` (walks every page)."""
        query = "?limit=100"
        while True:
            _, page = self.call("GET", f"{path}{query}")
            for item in page["data"]:
                if all(item.get(key) == value for key, value in match.items()):
                    return item
            if not page["has_more"] or not page["data"]:
                return None
            query = f"?limit=100&starting_after={page['data'][-1]['id']}"


def _standin(method: str, url: str, body: Any = None) -> Any:
    response = requests.request(method, url, json=body, timeout=TIMEOUT_SECONDS)
    if response.status_code >= 300:
        raise SeedError(f"stand-in {method} {url} answered {response.status_code}: {response.text[:500]}")
    return response.json()


def demo_account(domain: str) -> tuple[str, dict[str, str]]:
    """The demo account on `domain` (created the first time) and a fresh key for it."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nixflex.settings")
    django.setup()
    from tenants.models import Domain
    from tenants.services import create_account, create_api_key

    found = Domain.objects.select_related("tenant").filter(domain=domain).first()
    if found is None:
        account, issued = create_account(name=DEMO_ACCOUNT_NAME, domain=domain)
    else:
        account, issued = found.tenant, create_api_key(account=found.tenant, name="demo")
    return account.schema_name, issued.as_dict()


def demo_number(api: Api, twilio_standin: str, agent_id: str) -> str:
    """The demo clinic's number, imported onto the agent, its webhooks pointing at this server."""
    twilio_standin = twilio_standin.rstrip("/")
    sid, token = demo_twilio_credentials()
    _standin("POST", f"{twilio_standin}/_standin/accounts", {"sid": sid, "token": token})
    status, stored = api.call("GET", f"/v1/phone-numbers/{DEMO_NUMBER}", ok=(200, 404))
    stored = stored if status == 200 else None
    if stored is not None and stored["twilio_sid"] != sid:
        raise SeedError(
            f"{DEMO_NUMBER} is stored with another Twilio account ({stored['twilio_sid']}); "
            f"remove it (DELETE /v1/phone-numbers/{DEMO_NUMBER}) or use a fresh database"
        )
    at_twilio = {n["phone_number"]: n for n in _standin("GET", f"{twilio_standin}/_standin/numbers/{sid}")}
    known = at_twilio.get(DEMO_NUMBER)
    if known is None:
        fields: dict[str, Any] = {"account_sid": sid, "phone_number": DEMO_NUMBER}
        if stored is not None:  # what the database knows from an earlier run
            fields["sid"] = stored["twilio_number_sid"]
        _standin("POST", f"{twilio_standin}/_standin/numbers", fields)
    elif stored is not None and known["sid"] != stored["twilio_number_sid"]:
        raise SeedError(
            f"the Twilio stand-in has {DEMO_NUMBER} as {known['sid']} but the database as "
            f"{stored['twilio_number_sid']}; restart the stand-ins"
        )
    if stored is None:
        clinic = (
            api.find("/v1/customers", name=DEMO_CLINIC["name"]) or api.call("POST", "/v1/customers", DEMO_CLINIC)[1]
        )
        api.call(
            "POST",
            "/v1/phone-numbers",
            {
                "phone_number": DEMO_NUMBER,
                "twilio_sid": sid,
                "twilio_token": token,
                "agent_id": agent_id,
                "customer_id": clinic["id"],
                "friendly_name": DEMO_CLINIC["name"],
            },
        )
    else:
        api.call("POST", f"/v1/phone-numbers/{DEMO_NUMBER}/repair")
    return DEMO_NUMBER


def seed(*, server: str, domain: str, twilio_standin: str = "", anthropic_standin: str = "") -> dict[str, Any]:
    schema_name, key = demo_account(domain)
    api = Api(server, f"{key['key_id']}:{key['key_secret']}")
    agent = (
        api.find("/v1/agents", name=DEMO_AGENT_NAME)
        or api.call(
            "POST",
            "/v1/agents",
            {"name": DEMO_AGENT_NAME, "system_prompt": DEMO_PROMPT, "first_message": DEMO_FIRST_MESSAGE},
        )[1]
    )
    out: dict[str, Any] = {"schema_name": schema_name, "domain": domain, "agent_id": agent["id"]}
    if twilio_standin:
        out["phone_number"] = demo_number(api, twilio_standin, agent["id"])
    if anthropic_standin:
        _standin("POST", f"{anthropic_standin.rstrip('/')}/_standin/script", {"rules": DEMO_CLAUDE_SCRIPT})
    return {**out, **key}


def main() -> int:
    parser = argparse.ArgumentParser(description="Seed the demo account against a running server.")
    parser.add_argument("--server", required=True, help="where the server listens, e.g. http://127.0.0.1:8000")
    parser.add_argument("--domain", default="demo.localhost", help="the demo account's host")
    parser.add_argument(
        "--twilio-standin",
        default="",
        help="base URL of the local Twilio stand-in: also provision the demo clinic's number on it",
    )
    parser.add_argument(
        "--anthropic-standin",
        default="",
        help="base URL of the local Anthropic stand-in: give it a dental receptionist's script",
    )
    args = parser.parse_args()
    try:
        out = seed(
            server=args.server,
            domain=args.domain,
            twilio_standin=args.twilio_standin,
            anthropic_standin=args.anthropic_standin,
        )
    except (SeedError, requests.RequestException) as exc:
        print(f"seed_demo: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
