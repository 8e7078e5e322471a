"""URLs of the public hosts: the API, the operators' admin, Twilio's webhooks."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from telephony import concurrency, webhooks


def health(request: HttpRequest) -> JsonResponse:
    # `calls`: the capacity this process advertises for admission, and the calls it serves.
    return JsonResponse({"status": "ok", "calls": concurrency.process_load()})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health),
    path("twilio/voice", webhooks.voice),
    path("twilio/status", webhooks.status),
    path("", include("nixflex.urls_api")),
]
