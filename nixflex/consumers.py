"""A health-check WebSocket: echoes each text frame back through the channel layer,
which proves the socket, the ASGI stack and Redis are all working."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class HealthConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.channel_layer.send(self.channel_name, {"type": "echo", "content": content})

    async def echo(self, event: dict[str, Any]) -> None:
        await self.send_json({"echo": event["content"]})
