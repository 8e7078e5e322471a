"""End-customers of a reseller (one dental clinic, say), in the account's schema."""

from __future__ import annotations

from typing import Any

from django.db import models

from nixflex.ids import new_id


def _new_customer_id() -> str:
    return new_id("cus")


class Customer(models.Model):
    """What differs per clinic. Its fields fill `{{placeholders}}` in the agent's prompt
    when one of its numbers is dialled."""

    id = models.CharField(primary_key=True, max_length=40, default=_new_customer_id, editable=False)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")
    address = models.TextField(blank=True, default="")
    # {"mon": "09:00-17:00", ...} or free text: shown to the agent as written.
    opening_hours = models.JSONField(default=dict, blank=True)
    transfer_number = models.CharField(max_length=16, blank=True, default="")
    variables = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    def template_variables(self) -> dict[str, Any]:
        """The values `{{name}}` placeholders resolve to (free-form variables win)."""
        hours = self.opening_hours
        if isinstance(hours, dict):
            hours = ", ".join(f"{day} {span}" for day, span in hours.items())
        return {
            "customer_name": self.name,
            "clinic_name": self.name,
            "timezone": self.timezone,
            "address": self.address,
            "opening_hours": hours or "",
            "transfer_number": self.transfer_number,
            **{str(k): v for k, v in (self.variables or {}).items()},
        }
