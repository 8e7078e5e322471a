import json

from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import schema_context

from agents.models import Agent
from agents.services import create_agent
from tenants.models import Domain
from tenants.services import create_account, create_api_key

DEMO_PROMPT = (
    "You are the friendly receptionist of {{clinic_name}}, a dental clinic in {{city}}. "
    "Opening hours: {{opening_hours}}. Help callers book, move or cancel appointments, "
    "answer questions about the clinic, and keep answers short: this is a phone call."
)


class Command(BaseCommand):
    help = "Create (or reuse) the demo account on demo.localhost with an agent; print a fresh API key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--domain", default="demo.localhost")

    def handle(self, *args, **options) -> None:
        domain = Domain.objects.select_related("tenant").filter(domain=options["domain"]).first()
        if domain is None:
            account, issued = create_account(name="Ringback Demo", domain=options["domain"])
        else:
            account = domain.tenant
            issued = create_api_key(account=account, name="demo")
        with schema_context(account.schema_name):
            agent = Agent.objects.filter(name="Ringback Dental Receptionist").first() or create_agent(
                account=account,
                name="Ringback Dental Receptionist",
                system_prompt=DEMO_PROMPT,
                first_message="Thanks for calling {{clinic_name}}, how can I help you today?",
            )
        self.stdout.write(json.dumps({
            "schema_name": account.schema_name, "domain": options["domain"], "agent_id": agent.id,
            **issued.as_dict(),
        }))
