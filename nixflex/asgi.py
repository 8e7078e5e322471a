"""ASGI entry point: HTTP goes to Django, WebSockets to Channels consumers.

HTTP is served by Django's WSGI handler inside the ASGI server: every view and middleware
here is synchronous, and under Django's ASGI handler each of the ten middlewares would hop
to a thread on its own (about thirty hops per request) in a fresh thread per request, so
no database connection could be reused. a2wsgi runs the whole request in one hop on a pooled
thread that keeps its connection (CONN_MAX_AGE).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nixflex.settings")
django_http_app = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from nixflex.middleware import RequestBodyLimit  # noqa: E402
from nixflex.routing import websocket_urlpatterns  # noqa: E402
from telephony import concurrency  # noqa: E402

# A web process: advertise its call capacity (and renew its calls' slots) from now on.
concurrency.start_keeper()

application = ProtocolTypeRouter(
    {
        # django-stubs types a WSGI response as HttpResponseBase, which is the iterable of bytes a2wsgi wants.
        "http": RequestBodyLimit(WSGIMiddleware(django_http_app, workers=int(os.environ.get("HTTP_THREADS", "10")))),  # type: ignore[arg-type]
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

# The server process warms its provider clients before it takes calls (ASGI lifespan).
from nixflex.lifespan import with_lifespan  # noqa: E402

application = with_lifespan(application)
