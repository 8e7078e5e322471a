"""End-customers: create, change, delete, look up."""

from __future__ import annotations

from typing import Any

from customers.models import Customer
from nixflex.errors import ApiError


def get_customer(customer_id: str) -> Customer:
    customer = Customer.objects.filter(id=customer_id).first()
    if customer is None:
        raise ApiError("customer_not_found", details={"customer_id": customer_id})
    return customer


def create_customer(**fields: Any) -> Customer:
    return Customer.objects.create(**fields)


def update_customer(*, customer: Customer, **fields: Any) -> Customer:
    for name, value in fields.items():
        setattr(customer, name, value)
    customer.save()
    return customer


def delete_customer(*, customer: Customer) -> None:
    # Its numbers stay imported and answered; they just lose the customer context.
    customer.delete()
