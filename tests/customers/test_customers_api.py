"""/v1/customers: the clinics behind a reseller's numbers."""

from __future__ import annotations

from tests.conftest import Persona, assert_error


def test_crud(alice: Persona) -> None:
    client = alice.client()
    created = client.post(
        "/v1/customers",
        {
            "name": "Smile Dental Croydon",
            "timezone": "Europe/London",
            "address": "1 High St, Croydon",
            "opening_hours": {"mon-fri": "09:00-17:30"},
            "transfer_number": "+442011110009",
            "variables": {"city": "Croydon", "dentist": "Dr Patel"},
        },
    )
    assert created.status_code == 201, created.content
    customer = created.json()
    assert customer["id"].startswith("cus_") and customer["object"] == "customer"
    assert client.get(f"/v1/customers/{customer['id']}").json()["variables"] == {
        "city": "Croydon",
        "dentist": "Dr Patel",
    }
    patched = client.patch(f"/v1/customers/{customer['id']}", {"address": "2 High St"})
    assert patched.json()["address"] == "2 High St" and patched.json()["name"] == "Smile Dental Croydon"
    assert [c["id"] for c in client.get("/v1/customers").json()["data"]] == [customer["id"]]
    assert client.delete(f"/v1/customers/{customer['id']}").json()["deleted"] is True
    assert_error(client.get(f"/v1/customers/{customer['id']}"), 404, "not_found", "customer_not_found")


def test_validation(alice: Persona) -> None:
    client = alice.client()
    error = assert_error(
        client.post("/v1/customers", {"name": "X", "timezone": "Mars/Olympus", "transfer_number": "0800 123"}),
        400,
        "invalid_request",
        "invalid_request",
    )
    assert set(error["details"]["fields"]) == {"timezone", "transfer_number"}
    assert_error(client.post("/v1/customers", {}), 400, "invalid_request", "invalid_request")


def test_outsider_cannot_reach_customers(alice: Persona, bob: Persona) -> None:
    customer = alice.client().post("/v1/customers", {"name": "Pearly Whites"}).json()
    outsider = bob.client()
    path = f"/v1/customers/{customer['id']}"
    for response in (outsider.get(path), outsider.patch(path, {"name": "taken"}), outsider.delete(path)):
        assert_error(response, 404, "not_found", "customer_not_found")
    assert outsider.get("/v1/customers").json()["data"] == []
    assert alice.client().get(path).json()["name"] == "Pearly Whites"
