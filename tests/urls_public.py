"""The public URLconf plus routes that fail on purpose (tests only)."""

import redis
from django.conf import settings
from django.db import connection
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


class UncheckedValueApi(APIView):
    """Hands a query value to PostgreSQL unchecked (as a missed validation would)."""

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()

    def get(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::integer", [request.query_params.get("n", "")])
            return Response({"n": cursor.fetchone()[0]})


class NeedsRedisApi(APIView):
    """Uses Redis directly (settings.REDIS_URL), as a feature that truly needs it would."""

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()

    def get(self, request: Request) -> Response:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        return Response({"pong": client.ping()})


urlpatterns = [
    path("v1/_test/broken-api", BrokenApi.as_view()),
    path("v1/_test/broken-view", broken_plain_view),
    path("v1/_test/unchecked-value", UncheckedValueApi.as_view()),
    path("v1/_test/needs-redis", NeedsRedisApi.as_view()),
    *public_urlpatterns,
]
