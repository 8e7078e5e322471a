"""Hostile input never gets a 500: NUL characters, absurd nesting, huge bodies.

Each case was a 500 (PostgreSQL refusing NUL, RecursionError in the JSON decoder, a body
read whole into memory) before the edge checks.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import ApiClient, Persona, assert_error

NUL = "\x00"


def _reason(response: Any) -> str:
    return assert_error(response, 400, "invalid_request", "invalid_request")["details"]["reason"]


# --- NUL characters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("get", "/v1/agents/agt%00x", None),
        ("get", "/v1/customers/%00", None),
        ("get", "/v1/calls/call_%00", None),
        ("get", "/v1/jobs/job%00", None),
        ("delete", "/v1/customers/cus_%00", None),
        ("get", "/v1/calls", {"agent_id": f"agt{NUL}"}),
        ("get", "/v1/calls", {"phone_number": f"+44{NUL}"}),
        ("get", "/v1/phone-numbers", {"customer_id": NUL}),
        ("get", "/v1/agents", {f"x{NUL}": "1"}),
        ("get", "/v1/customers", {"starting_after": f"cus_{NUL}"}),
    ],
)
def test_nul_in_path_or_query_is_invalid_request(
    alice: Persona, method: str, path: str, params: dict[str, str] | None
) -> None:
    client = alice.client()
    response = client.get(path, params) if method == "get" else client.delete(path)
    assert _reason(response) == "nul_character"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/agents", {"name": f"Front{NUL}desk"}),
        ("/v1/agents", {"name": "ok", "first_message": f"Hello{NUL}"}),
        ("/v1/customers", {"name": "Clinic", "variables": {"city": f"Croydon{NUL}"}}),
        ("/v1/customers", {"name": "Clinic", "variables": {f"ci{NUL}ty": "Croydon"}}),
        ("/v1/customers", {"name": "Clinic", "opening_hours": {"mon": [f"09:00{NUL}"]}}),
        ("/v1/customers", {"name": "Clinic", "opening_hours": f"weekdays{NUL}"}),
        (
            "/v1/phone-numbers",
            {
                "phone_number": "+442011110000",
                "twilio_sid": "AC" + "a" * 32,
                "twilio_token": "t",
                "agent_id": f"agt{NUL}",
            },
        ),
        ("/v1/phone-numbers/bulk", {"numbers": [{"phone_number": "+442011110000", "agent_id": NUL}]}),
    ],
)
def test_nul_in_json_fields_is_invalid_request(alice: Persona, path: str, body: dict[str, Any]) -> None:
    response = alice.client().post(path, body)
    error = assert_error(response, 400, "invalid_request", "invalid_request")
    assert error["details"]["reason"] == "nul_character"


def test_nul_in_a_patch_body(alice: Persona) -> None:
    client = alice.client()
    customer = client.post("/v1/customers", {"name": "Clinic"}).json()
    assert _reason(client.patch(f"/v1/customers/{customer['id']}", {"variables": {"a": NUL}})) == "nul_character"
    assert client.get(f"/v1/customers/{customer['id']}").json()["variables"] == {}


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "Clinic", "variables": {"a": "\\ud800"}}',  # a lone surrogate: not UTF-8
        '{"name": "Clinic", "variables": {"a": 1e999}}',  # infinity: jsonb refuses it
        '{"name": "Clinic", "opening_hours": {"mon": [-1e999]}}',
    ],
)
def test_text_and_numbers_the_database_cannot_store(alice: Persona, raw: str) -> None:
    assert _reason(alice.client().post("/v1/customers", raw=raw)) in {"invalid_unicode", "number_out_of_range"}


def _plain_client() -> Client:
    return Client(HTTP_HOST="api.localhost", raise_request_exception=False)


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/twilio/voice", {"To": f"+4420{NUL}", "From": "+442011110000", "CallSid": "CA" + "0" * 32}),
        ("/twilio/status", {"To": "+442011110000", "CallSid": f"CA{NUL}", "CallStatus": "completed"}),
        ("/admin/login/", {"username": f"admin{NUL}", "password": "x"}),
    ],
)
def test_nul_on_routes_outside_the_api_is_a_400_not_a_500(path: str, form: dict[str, str]) -> None:
    response = _plain_client().post(path, form)
    assert response.status_code == 400, response.content[:300]
    assert b"NUL" in response.content


def test_nul_in_the_query_of_a_webhook() -> None:
    response = _plain_client().post("/twilio/voice?x=%00", {"To": "+442011110000"})
    assert response.status_code == 400


# --- Nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100_000, 1_000, settings.API_MAX_JSON_DEPTH + 1])
def test_deeply_nested_json_is_invalid_request(alice: Persona, depth: int) -> None:
    raw = "[" * depth + "]" * depth
    error = assert_error(alice.client().post("/v1/agents", raw=raw), 400, "invalid_request", "invalid_request")
    assert error["details"] == {"reason": "too_deeply_nested", "max_depth": settings.API_MAX_JSON_DEPTH}


def test_deep_objects_inside_fields_too(alice: Persona) -> None:
    # json.dumps cannot go that deep itself: the text is built directly.
    raw = '{"name": "Clinic", "variables": {"x": ' + '{"a": ' * 50_000 + '"leaf"' + "}" * 50_000 + "}}"
    assert _reason(alice.client().post("/v1/customers", raw=raw)) == "too_deeply_nested"


def test_reasonable_nesting_still_works(alice: Persona) -> None:
    value: Any = "leaf"
    for _ in range(5):
        value = {"a": value}
    response = alice.client().post("/v1/customers", {"name": "Clinic", "variables": {"x": value}})
    assert response.status_code == 201, response.content


# --- Body size (Django's side: any WSGI server, and the test client) --------------------


def test_declared_huge_body_is_refused_unread(alice: Persona) -> None:
    # The body really sent is 2 bytes: had anything tried to read the declared 30 MB, the
    # test client's payload would have raised (a 500).
    response = alice.client().client.post(
        "/v1/agents",
        "{}",
        content_type="application/json",
        CONTENT_LENGTH=str(30 * 1024 * 1024),
        HTTP_AUTHORIZATION=alice.bearer,
    )
    error = assert_error(response, 400, "invalid_request", "invalid_request")
    assert error["details"] == {"reason": "body_too_large", "max_bytes": settings.MAX_REQUEST_BODY_BYTES}


def test_declared_huge_body_on_a_webhook_is_413() -> None:
    response = _plain_client().post(
        "/twilio/voice",
        "To=%2B44",
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(30 * 1024 * 1024),
    )
    assert response.status_code == 413


def test_body_just_under_the_limit_is_read(alice: Persona) -> None:
    padding = "x" * (settings.MAX_REQUEST_BODY_BYTES - 200)
    response = alice.client().post("/v1/agents", {"name": "ok", "padding": padding})
    assert response.status_code in (201, 400)
    if response.status_code == 400:  # refused for its content, never for its size
        assert response.json()["error"]["details"].get("reason") != "body_too_large"


# --- Body size through the real server (uvicorn), declared and chunked -------------------


def _connect(server_url: str) -> socket.socket:
    parsed = urlparse(server_url)
    sock = socket.create_connection((parsed.hostname, parsed.port or 80), timeout=10)
    return sock


def _read_response(sock: socket.socket, into: list[bytes]) -> None:
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            into.append(data)
    except OSError:
        return


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2 :]
        body = decoded
    return status, headers, body


def _send_huge(asgi_server: str, persona: Persona, chunked: bool) -> tuple[int, dict[str, Any], int, float]:
    """POST 30 MB, declared or chunked, reading the answer while sending; returns the
    status, the JSON answer, how many bytes were sent before the server refused, and when."""
    total = 30 * 1024 * 1024
    sock = _connect(asgi_server)
    received: list[bytes] = []
    reader = threading.Thread(target=_read_response, args=(sock, received), daemon=True)
    length_header = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = (
        f"POST /v1/agents HTTP/1.1\r\nHost: api.localhost\r\nAuthorization: {persona.bearer}\r\n"
        f"Content-Type: application/json\r\n{length_header}\r\n\r\n"
    )
    started = time.monotonic()
    sock.sendall(head.encode())
    reader.start()
    piece = b"[" + b"1," * 32767 + b"1"
    sent = 0
    try:
        while sent < total and not received:
            chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
            sock.sendall(chunk)
            sent += len(piece)
    except OSError:
        pass  # the server closed the connection: expected once it has answered
    reader.join(timeout=10)
    elapsed = time.monotonic() - started
    sock.close()
    status, _, body = _parse(b"".join(received))
    return status, json.loads(body), sent, elapsed


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_real_server_refuses_a_30mb_body_before_reading_it(asgi_server: str, alice: Persona, chunked: bool) -> None:
    status, body, sent, elapsed = _send_huge(asgi_server, alice, chunked)
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["details"]["reason"] == "body_too_large"
    # Refused long before 30 MB went over the wire (socket buffers allow a few MB more).
    assert sent < settings.MAX_REQUEST_BODY_BYTES + 8 * 1024 * 1024, sent
    assert elapsed < 10


def test_real_server_still_reads_a_small_chunked_body(asgi_server: str, alice: Persona) -> None:
    body = json.dumps({"name": "Chunked"}).encode()
    sock = _connect(asgi_server)
    sock.sendall(
        (
            f"POST /v1/agents HTTP/1.1\r\nHost: api.localhost\r\nAuthorization: {alice.bearer}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        ).encode()
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    received: list[bytes] = []
    _read_response(sock, received)
    sock.close()
    status, _, answer = _parse(b"".join(received))
    assert status == 201, answer
    assert json.loads(answer)["name"] == "Chunked"


# --- Sanity: the API client used above is the usual one ---------------------------------


def test_unauthenticated_nul_is_still_refused_before_anything_else() -> None:
    assert _reason(ApiClient(None).get("/v1/agents", {"q": NUL})) == "nul_character"


# --- A value no check caught still is not a 500 ------------------------------------------


def test_a_value_the_database_refuses_is_invalid_request() -> None:
    assert ApiClient(None).get("/v1/_test/unchecked-value", {"n": "7"}).json() == {"n": 7}
    for value in ("seven", "99999999999999999999"):
        response = ApiClient(None).get("/v1/_test/unchecked-value", {"n": value})
        assert _reason(response) == "invalid_value"
        assert value not in response.content.decode()


# --- Django's own limits ----------------------------------------------------------------


def test_too_many_query_parameters_is_invalid_request(alice: Persona) -> None:
    query = "&".join(f"p{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = alice.client().client.get(f"/v1/agents?{query}", HTTP_AUTHORIZATION=alice.bearer)
    assert_error(response, 400, "invalid_request", "invalid_request")


def test_a_number_too_long_to_parse_is_invalid_request(alice: Persona) -> None:
    response = alice.client().post("/v1/agents", raw='{"name": "x", "max_call_seconds": ' + "9" * 5000 + "}")
    assert _reason(response) == "malformed_body"
