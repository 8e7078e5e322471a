"""Tenant-schema models of the telephony app."""

from __future__ import annotations

from django.db import models
from encrypted_fields.fields import EncryptedTextField

from nixflex.ids import new_id


def _new_job_id() -> str:
    return new_id("job")


class PhoneNumber(models.Model):
    """A Twilio number of the customer's own account, imported onto an agent."""

    WEBHOOKS_OK = "ok"
    WEBHOOKS_DRIFTED = "drifted"  # someone pointed them elsewhere in the Twilio console
    WEBHOOKS_MISSING = "missing"  # the number is gone from the Twilio account
    WEBHOOKS_UNKNOWN = "unknown"  # the last check could not reach Twilio

    phone_number = models.CharField(max_length=16, unique=True)
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="phone_numbers")
    customer = models.ForeignKey("customers.Customer", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="phone_numbers")
    friendly_name = models.CharField(max_length=200, blank=True, default="")
    twilio_account_sid = models.CharField(max_length=34)
    twilio_number_sid = models.CharField(max_length=34)
    # Twilio signs webhooks with the account's auth token: needed to verify them.
    twilio_auth_token = EncryptedTextField()
    api_key_id = models.CharField(max_length=40, blank=True, default="")
    voice_url = models.URLField(max_length=500)
    sms_url = models.URLField(max_length=500)
    status_callback_url = models.URLField(max_length=500)
    webhook_status = models.CharField(max_length=10, default=WEBHOOKS_OK)
    webhook_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.phone_number


class Job(models.Model):
    """Long-running work with progress (bulk imports), run by a Celery worker."""

    QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
    BULK_IMPORT = "phone_numbers.bulk_import"

    id = models.CharField(primary_key=True, max_length=40, default=_new_job_id, editable=False)
    kind = models.CharField(max_length=40)
    status = models.CharField(max_length=12, default=QUEUED)
    total = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    api_key_id = models.CharField(max_length=40, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched as rows finish: a running job that stops moving has lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def done(self) -> int:
        return self.succeeded + self.failed


class JobRow(models.Model):
    """One row of a bulk job: its input (the Twilio token kept encrypted, and wiped once
    the row is done) and its outcome, exactly what the single call would have answered."""

    PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="rows")
    index = models.PositiveIntegerField()
    params = models.JSONField(default=dict)
    twilio_token = EncryptedTextField(null=True, blank=True)
    status = models.CharField(max_length=10, default=PENDING)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="unique_job_row")]
