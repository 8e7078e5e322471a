"""WebSocket routes. Each consumer resolves its own tenant: django-tenants' middleware
does not run for WebSockets."""

from django.urls import path

from nixflex.consumers import HealthConsumer
from telephony.consumers import MediaStreamConsumer

websocket_urlpatterns = [
    path("ws/health", HealthConsumer.as_asgi()),
    path("media", MediaStreamConsumer.as_asgi()),
]
