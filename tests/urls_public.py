"""The public URLconf plus routes that fail on purpose (tests only)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nixflex.urls_public import urlpatterns as public_urlpatterns


class BrokenApi(APIView):
    def get(self, request: Request) -> Response:
        raise RuntimeError("secret internals: /srv/nixflex/db.py line 42")


def broken_plain_view(request: HttpRequest) -> HttpResponse:
    raise ValueError("secret internals of a plain view")


urlpatterns = [
    path("v1/_test/broken-api", BrokenApi.as_view()),
    path("v1/_test/broken-view", broken_plain_view),
    *public_urlpatterns,
]
