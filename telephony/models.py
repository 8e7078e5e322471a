"""Tenant-schema models of the telephony app."""

from __future__ import annotations

from django.db import models

from nixflex.encryption import EncryptedTextField
from nixflex.ids import new_id


def _new_job_id() -> str:
    return new_id("job")


class TwilioAccount(models.Model):
    """A customer's own Twilio account (BYO): its credentials, shared by all its numbers, so
    a rotated auth token is updated once for every number."""

    account_sid = models.CharField(max_length=34, unique=True)
    # Twilio signs webhooks with the account's auth token: needed to verify them.
    auth_token = EncryptedTextField()
    friendly_name = models.CharField(max_length=200, blank=True, default="")
    # When Twilio last accepted auth_token (an import, a rotation, a check).
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.account_sid

    def __repr__(self) -> str:  # never the token
        return f"<TwilioAccount {self.account_sid}>"


class PhoneNumber(models.Model):
    """A Twilio number of the customer's own account, imported onto an agent."""

    WEBHOOKS_OK = "ok"
    WEBHOOKS_DRIFTED = "drifted"  # someone pointed them elsewhere in the Twilio console
    WEBHOOKS_MISSING = "missing"  # the number is gone from the Twilio account
    WEBHOOKS_UNKNOWN = "unknown"  # the last check could not reach Twilio

    phone_number = models.CharField(max_length=16, unique=True)
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="phone_numbers")
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="phone_numbers"
    )
    friendly_name = models.CharField(max_length=200, blank=True, default="")
    twilio_account = models.ForeignKey(TwilioAccount, on_delete=models.PROTECT, related_name="phone_numbers")
    twilio_number_sid = models.CharField(max_length=34)
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

    @property
    def twilio_account_sid(self) -> str:
        return self.twilio_account.account_sid

    @property
    def twilio_auth_token(self) -> str:
        """The auth token of the number's Twilio account (the one signing its webhooks)."""
        return self.twilio_account.auth_token


class Job(models.Model):
    """Long-running work with progress (bulk imports), run by a Celery worker.

    The table is the queue (see telephony/services/jobs.py): a queued job either waits for
    one of its account's job slots (`dispatched_at` empty) or holds one and has its task
    message in the broker; a running job holds its slot until it ends.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    class FailureReason(models.TextChoices):
        NONE = "", "not failed"
        CRASHED = "crashed", "every attempt stopped with an error"
        WORKER_LOST = "worker_lost", "the worker running it died on every attempt"

    QUEUED, RUNNING, COMPLETED, FAILED = Status.QUEUED, Status.RUNNING, Status.COMPLETED, Status.FAILED
    UNFINISHED = (Status.QUEUED, Status.RUNNING)
    BULK_IMPORT = "phone_numbers.bulk_import"

    id = models.CharField(primary_key=True, max_length=40, default=_new_job_id, editable=False)
    kind = models.CharField(max_length=40)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    api_key_id = models.CharField(max_length=40, blank=True, default="")
    # Runs started (a run cut off by a dead worker counts): the job fails after JOB_MAX_ATTEMPTS.
    attempts = models.PositiveIntegerField(default=0)
    failure_reason = models.CharField(max_length=20, choices=FailureReason.choices, blank=True, default="")
    # The last crash (exception type and message), for operators; not shown to API clients.
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched as rows finish: a running job that stops moving may have lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the job took one of its account's slots and its task was sent; empty while it
    # waits for a slot.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # A job retried after a crash waits until then before it takes a slot again.
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"

    @property
    def done(self) -> int:
        return self.succeeded + self.failed


class JobRow(models.Model):
    """One row of a bulk job: its input (the Twilio token kept encrypted, and wiped once
    the row is done) and its outcome, exactly what the single call would have answered."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    PENDING, SUCCEEDED, FAILED = Status.PENDING, Status.SUCCEEDED, Status.FAILED

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="rows")
    index = models.PositiveIntegerField()
    params = models.JSONField(default=dict)
    twilio_token = EncryptedTextField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="unique_job_row")]

    def __str__(self) -> str:
        return f"{self.job_id} row {self.index} ({self.status})"


def _new_call_id() -> str:
    return new_id("call")


class Call(models.Model):
    """One phone call answered (or placed) by an agent."""

    class SummaryStatus(models.TextChoices):
        NONE = "none"  # nothing was said: no summary to write
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"  # Claude kept failing until the retries ran out

    INBOUND, OUTBOUND = "inbound", "outbound"
    # Twilio's call statuses, plus `rejected` (refused by Nixflex before answering).
    QUEUED, RINGING, IN_PROGRESS = "queued", "ringing", "in-progress"
    COMPLETED, BUSY, FAILED, NO_ANSWER, CANCELED, REJECTED = (
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
        "rejected",
    )
    TERMINAL = frozenset({COMPLETED, BUSY, FAILED, NO_ANSWER, CANCELED, REJECTED})
    # Why a call was rejected (its `end_reason` says which limit).
    CONCURRENT_CALL_LIMIT = "concurrent_call_limit"
    # A late or repeated status callback never moves a call backwards.
    STATUS_RANK = {QUEUED: 0, RINGING: 1, IN_PROGRESS: 2, **dict.fromkeys(TERMINAL, 3)}

    id = models.CharField(primary_key=True, max_length=40, default=_new_call_id, editable=False)
    twilio_call_sid = models.CharField(max_length=34, unique=True)
    direction = models.CharField(max_length=10, default=INBOUND)
    from_number = models.CharField(max_length=32, db_index=True)
    to_number = models.CharField(max_length=32)
    phone_number = models.ForeignKey(
        PhoneNumber, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    status = models.CharField(max_length=12, default=RINGING, db_index=True)
    rejection_reason = models.CharField(max_length=40, blank=True, default="")
    end_reason = models.CharField(max_length=40, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    # [{"role": "agent"|"caller", "text", "at" (seconds into the call), "interrupted"?, "dtmf"?}]
    transcript = models.JSONField(default=list, blank=True)
    # Per-turn latency marks (seconds into the call) and what the caller heard.
    turns = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True, default="")
    extraction = models.JSONField(default=dict, blank=True)
    summary_status = models.CharField(max_length=10, choices=SummaryStatus.choices, default=SummaryStatus.NONE)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["from_number", "-created_at"], name="call_caller_history")]

    def __str__(self) -> str:
        return f"{self.id} {self.from_number} -> {self.to_number} ({self.status})"
