"""WebSocket routes. Each consumer resolves its own tenant: django-tenants' middleware
does not run for WebSockets."""

from django.urls import path

from nixflex.consumers import HealthConsumer

websocket_urlpatterns = [
    path("ws/health", HealthConsumer.as_asgi()),
]
