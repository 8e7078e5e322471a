"""Show the call capacity the live web processes advertise and the call slots held."""

import json

from django.core.management.base import BaseCommand, CommandParser

from telephony import concurrency


class Command(BaseCommand):
    help = "Call capacity advertised by the live web processes, the platform pool, and the slots held."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: object, **options: object) -> None:
        load = concurrency.platform_load()
        if options["json"]:
            self.stdout.write(json.dumps(load))
            return
        for process in load["processes"]:
            self.stdout.write(f"{process['process']}: capacity {process['capacity']}, serving {process['live']}")
        self.stdout.write(
            f"advertised capacity {load['capacity']}, platform pool {load['pool']}, slots held {load['slots_held']}"
        )
