"""URLs of the public hosts: the API, the operators' admin, Twilio's webhooks."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from nixflex import outages
from telephony import concurrency, webhooks
from tenants import throttling


def health(request: HttpRequest) -> JsonResponse:
    # `calls`: the capacity this process advertises for admission, and the calls it serves.
    # Degraded dependencies are reported, not failed: the API keeps serving without Redis.
    return JsonResponse(
        {
            "status": "ok",
            "calls": concurrency.process_load(),
            "rate_limiter": throttling.status(),
            "dependency_errors": outages.counts(),
        }
    )


urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health),
    path("twilio/voice", webhooks.voice),
    path("twilio/status", webhooks.status),
    path("", include("nixflex.urls_api")),
]
