"""Twilio's webhooks. Thin: parse the form, call the service, answer TwiML fast."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from telephony.services import calls
from telephony.services.calls import WebhookForbidden


def _public_url(request: HttpRequest) -> str:
    # Twilio signs the URL it was given; proxies change scheme, host and port.
    return f"{settings.PUBLIC_BASE_URL}{request.get_full_path()}"


def _signature(request: HttpRequest) -> str:
    return request.headers.get("X-Twilio-Signature", "")


@csrf_exempt
@require_POST
def voice(request: HttpRequest) -> HttpResponse:
    try:
        answer = calls.answer_inbound_call(
            params=request.POST.dict(), signature=_signature(request), url=_public_url(request)
        )
    except WebhookForbidden:
        return HttpResponse("invalid signature", status=403, content_type="text/plain")
    return HttpResponse(answer.twiml, content_type="text/xml")


@csrf_exempt
@require_POST
def status(request: HttpRequest) -> HttpResponse:
    try:
        calls.record_status(params=request.POST.dict(), signature=_signature(request), url=_public_url(request))
    except WebhookForbidden:
        return HttpResponse("invalid signature", status=403, content_type="text/plain")
    return HttpResponse(status=204)
