import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Account
from tenants.services import create_api_key


class Command(BaseCommand):
    help = "Create an API key for an account; prints one JSON object (the secret is shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="the account's schema name")
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        account = Account.objects.filter(schema_name=options["account"]).first()
        if account is None:
            raise CommandError(f"no account with schema {options['account']!r}")
        issued = create_api_key(account=account, name=options["name"])
        self.stdout.write(json.dumps({"schema_name": account.schema_name, **issued.as_dict()}))
