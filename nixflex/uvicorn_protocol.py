"""uvicorn's HTTP protocol (httptools), fixed for WebSocket upgrades on reused connections.

Run the server with it (scripts/run.sh, the tests and the benchmarks do):

    python -m uvicorn nixflex.asgi:application --http nixflex.uvicorn_protocol:HttpProtocol

uvicorn 0.54 switches a connection to WebSocket as soon as the upgrade request's headers
are parsed, even if the previous response on that keep-alive connection has not reported
completion yet. It usually has not: a2wsgi sends the final (empty) body message after the
client already holds the whole response, so a proxy, or any pooled client, sends the
upgrade first. When the completion then comes, `on_response_complete` arms the HTTP
keep-alive timer on the old protocol object, and ~5 s later that timer closes the
transport, which by then carries the call's media stream. Pipelined, the 101 even went out
in the middle of the previous response.

Here an upgrade waits until every earlier response on the connection is complete, and the
keep-alive timer is disarmed when the connection changes hands. (uvicorn's h11 protocol
already waits: h11 does not read the next request before the response is done.)
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HttpProtocol(HttpToolsProtocol):
    _upgrade_waiting = False  # an upgrade request arrived while a response was still going out
    _upgraded = False  # the transport belongs to the WebSocket protocol now

    def handle_websocket_upgrade(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self._upgrade_waiting = True
            self.flow.pause_reading()  # a client sends nothing more before the 101
            return
        self._upgrade()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._upgrade_waiting or self.transport.is_closing():
            return
        if self.cycle.response_complete:  # the last request before the upgrade is answered
            self._upgrade_waiting = False
            self._upgrade()
        else:  # a pipelined request started: wait for its response too
            self.flow.pause_reading()

    def timeout_keep_alive_handler(self) -> None:
        if not self._upgraded:
            super().timeout_keep_alive_handler()

    def _upgrade(self) -> None:
        self._unset_keepalive_if_required()
        self._upgraded = True
        super().handle_websocket_upgrade()
