"""Tenant-schema models of the agents app."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from agents.voices import DEFAULT_VOICE_ID
from nixflex.ids import new_id

MAX_PROMPT_CHARS = 10_000


def _new_agent_id() -> str:
    return new_id("agent")


def _default_extraction_fields() -> list[str]:
    return ["caller_name", "reason_for_calling", "appointment_wanted"]


def _default_model() -> str:
    return settings.DEFAULT_CLAUDE_MODEL


class Agent(models.Model):
    """One prompt and personality; it may answer hundreds of numbers (one per customer)."""

    id = models.CharField(primary_key=True, max_length=40, default=_new_agent_id, editable=False)
    name = models.CharField(max_length=200)
    # May hold {{placeholders}}, filled from the dialled number's customer at call time.
    system_prompt = models.TextField(blank=True, default="")
    first_message = models.TextField(blank=True, default="")
    voice_id = models.CharField(max_length=64, default=DEFAULT_VOICE_ID)
    language = models.CharField(max_length=16, default="en")
    model = models.CharField(max_length=64, default=_default_model)
    temperature = models.FloatField(default=0.7)
    # Conversation tuning (Deepgram endpointing; silence and length limits).
    endpointing_ms = models.PositiveIntegerField(default=300)
    utterance_end_ms = models.PositiveIntegerField(default=1000)
    silence_timeout_seconds = models.PositiveIntegerField(default=10)
    max_call_seconds = models.PositiveIntegerField(default=900)
    # What the post-call job extracts from each conversation.
    extraction_fields = models.JSONField(default=_default_extraction_fields, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"
