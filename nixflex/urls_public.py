"""URLs of the public hosts: the API, the operators' admin, Twilio's webhooks."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health),
    path("", include("nixflex.urls_api")),
]
