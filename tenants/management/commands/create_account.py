import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenants.services import create_account


class Command(BaseCommand):
    help = "Create an account, its domain and a first API key; prints one JSON object."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--domain", required=True, help="Host of the account's dashboard, e.g. acme.localhost")
        parser.add_argument("--max-concurrent-calls", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        plan = {}
        if options["max_concurrent_calls"] is not None:
            plan["max_concurrent_calls"] = options["max_concurrent_calls"]
        started = time.perf_counter()
        account, issued = create_account(name=options["name"], domain=options["domain"], **plan)
        self.stdout.write(
            json.dumps(
                {
                    "schema_name": account.schema_name,
                    "name": account.name,
                    "domain": options["domain"].lower(),
                    **issued.as_dict(),
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
        )
