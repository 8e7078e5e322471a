"""Place a simulated inbound call (the offline demo): the simulator plays Twilio, the
running server answers with the agent, and the conversation is printed turn by turn."""

import asyncio
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from standins.caller import SimulatedCall, Utterance
from telephony.models import Call, PhoneNumber
from tenants.models import NumberRoute

DEFAULT_SCRIPT = [
    "Hi, I'd like to book a cleaning please",
    "Is Tuesday morning possible?",
    "Great, thanks. Goodbye",
]


class Command(BaseCommand):
    help = "Simulate a caller dialling an imported number, against the running server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", required=True, help="the imported number to call (E.164)")
        parser.add_argument("--from", dest="from_", default="+447700900001", help="the caller's number")
        parser.add_argument("--say", action="append", default=[], help="a caller utterance (repeatable)")
        parser.add_argument("--server", default="http://127.0.0.1:8000", help="where the server listens")

    def handle(self, *args, **options) -> None:
        route = NumberRoute.objects.select_related("account").filter(phone_number=options["to"]).first()
        if route is None:
            raise CommandError(f"{options['to']} is not imported in any account")
        with tenant_context(route.account):
            number = PhoneNumber.objects.get(phone_number=options["to"])
            account_sid, token = number.twilio_account_sid, number.twilio_auth_token
        script = [Utterance(text) for text in (options["say"] or DEFAULT_SCRIPT)]
        call = SimulatedCall(server_url=options["server"], public_base_url=settings.PUBLIC_BASE_URL,
                             twilio_url=settings.TWILIO_API_BASE_URL, account_sid=account_sid, auth_token=token,
                             from_number=options["from_"], to_number=options["to"], script=script)
        rec = asyncio.run(call.run())
        if rec.refused:
            self.stdout.write(f"The call was not connected:\n{rec.twiml}")
            return
        events = [(a.started, "agent", a.text, None) for a in rec.agent]
        events += [(t.speech_end, "caller", t.caller_text, t.latency_ms) for t in rec.turns]
        for at, who, text, latency in sorted(events, key=lambda e: e[0]):
            extra = f"   (agent answered after {latency:.0f} ms)" if latency is not None else ""
            self.stdout.write(f"[{at:6.2f}s] {who:>6}: {text}{extra}")
        self.stdout.write(f"\nCall {rec.call_id} ended by the {rec.ended_by or 'caller'}.")
        saved = None
        for _ in range(50):  # the server writes the call when its stream closes
            with tenant_context(route.account):
                saved = Call.objects.filter(id=rec.call_id, ended_at__isnull=False).first()
            if saved is not None:
                break
            time.sleep(0.1)
        if saved is not None and saved.turns:
            self.stdout.write("Engine time per turn (end of caller turn -> first audio frame sent):")
            for turn in saved.turns:
                if turn.get("engine_ms") is not None:
                    self.stdout.write(f"  turn {turn['index']}: {turn['engine_ms']:.1f} ms "
                                      f"(voice-to-voice {turn['voice_to_voice_ms']:.1f} ms)")
        self.stdout.write(f"See it in the API: GET /v1/calls/{rec.call_id}")
