"""URLs of the public hosts: the API, the operators' admin, Twilio's webhooks."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from telephony import webhooks


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health),
    path("twilio/voice", webhooks.voice),
    path("twilio/status", webhooks.status),
    path("", include("nixflex.urls_api")),
]
