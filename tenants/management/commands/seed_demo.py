import hashlib
import json

import requests
from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import schema_context

from agents.models import Agent
from agents.services import create_agent
from customers.models import Customer
from telephony.models import PhoneNumber
from telephony.services.numbers import import_number, repair_webhooks
from tenants.models import Domain
from tenants.services import create_account, create_api_key

DEMO_PROMPT = (
    "You are the friendly receptionist of {{clinic_name}}, a dental clinic in {{city}}. "
    "Opening hours: {{opening_hours}}. Help callers book, move or cancel appointments, "
    "answer questions about the clinic, and keep answers short: this is a phone call."
)
DEMO_NUMBER = "+442011110001"
# What the offline Claude stand-in answers in the demo (first matching rule wins).
DEMO_CLAUDE_SCRIPT = [
    {"system_contains": "summarise phone calls",
     "text": '{"summary": "The caller booked a cleaning for Tuesday morning.", "extraction": '
             '{"caller_name": null, "reason_for_calling": "cleaning", "appointment_wanted": "Tuesday morning"}}'},
    {"match": "goodbye", "text": "You're welcome. See you on Tuesday, goodbye!",
     "tool": {"name": "end_call", "input": {}}},
    {"match": "tuesday", "text": "Tuesday at ten in the morning is free. Shall I book that for you?"},
    {"match": "book", "text": "Of course, I can book a cleaning for you. What day suits you best?"},
    {"match": "open", "text": "We're open nine to half past five on weekdays, and Saturday mornings."},
]


def _demo_twilio_credentials() -> tuple[str, str]:
    return ("AC" + hashlib.sha256(b"nixflex-demo-account").hexdigest()[:32],
            hashlib.sha256(b"nixflex-demo-token").hexdigest()[:32])


class Command(BaseCommand):
    help = "Create (or reuse) the demo account on demo.localhost with an agent; print a fresh API key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--domain", default="demo.localhost")
        parser.add_argument("--twilio-standin", default="",
                            help="base URL of the local Twilio stand-in: also provision a demo clinic number on it")
        parser.add_argument("--anthropic-standin", default="",
                            help="base URL of the local Anthropic stand-in: give it a dental receptionist's script")

    def handle(self, *args, **options) -> None:
        domain = Domain.objects.select_related("tenant").filter(domain=options["domain"]).first()
        if domain is None:
            account, issued = create_account(name="Ringback Demo", domain=options["domain"])
        else:
            account = domain.tenant
            issued = create_api_key(account=account, name="demo")
        out = {"schema_name": account.schema_name, "domain": options["domain"]}
        with schema_context(account.schema_name):
            agent = Agent.objects.filter(name="Ringback Dental Receptionist").first() or create_agent(
                account=account,
                name="Ringback Dental Receptionist",
                system_prompt=DEMO_PROMPT,
                first_message="Thanks for calling {{clinic_name}}, how can I help you today?",
            )
            out["agent_id"] = agent.id
            if options["twilio_standin"]:
                out["phone_number"] = self._demo_number(account, agent, issued.api_key.key_id,
                                                        options["twilio_standin"])
        if options["anthropic_standin"]:
            requests.post(f"{options['anthropic_standin']}/_standin/script", json={"rules": DEMO_CLAUDE_SCRIPT},
                          timeout=5).raise_for_status()
        self.stdout.write(json.dumps({**out, **issued.as_dict()}))

    def _demo_number(self, account, agent, api_key_id: str, standin: str) -> str:
        """The offline demo's clinic and its number, on the Twilio stand-in (in memory: it is
        provisioned again at every start)."""
        sid, token = _demo_twilio_credentials()
        requests.post(f"{standin}/_standin/accounts", json={"sid": sid, "token": token}, timeout=5).raise_for_status()
        requests.post(f"{standin}/_standin/numbers", json={"account_sid": sid, "phone_number": DEMO_NUMBER},
                      timeout=5)
        clinic = Customer.objects.filter(name="Smile Dental Croydon").first() or Customer.objects.create(
            name="Smile Dental Croydon", timezone="Europe/London", address="1 High Street, Croydon",
            opening_hours={"mon-fri": "09:00-17:30", "sat": "09:00-12:00"},
            variables={"city": "Croydon"})
        number = PhoneNumber.objects.filter(phone_number=DEMO_NUMBER).first()
        if number is None:
            import_number(account=account, api_key_id=api_key_id, phone_number=DEMO_NUMBER, twilio_sid=sid,
                          twilio_token=token, agent_id=agent.id, customer_id=clinic.id,
                          friendly_name="Smile Dental Croydon")
        else:
            repair_webhooks(number)
        return DEMO_NUMBER
