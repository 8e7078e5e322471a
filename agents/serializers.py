from __future__ import annotations

from rest_framework import serializers

from agents.models import MAX_PROMPT_CHARS, Agent
from agents.voices import is_known_voice
from nixflex.pagination import list_of


class AgentInput(serializers.Serializer):
    """Create and (partially) update an agent. Error codes that the API documents
    (prompt_too_long, invalid_voice_id) are raised as validation codes and rendered
    under that code by the error handler."""

    name = serializers.CharField(max_length=200)
    system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    first_message = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    voice_id = serializers.CharField(required=False, max_length=64)
    language = serializers.CharField(required=False, max_length=16)
    model = serializers.CharField(required=False, max_length=64)
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    endpointing_ms = serializers.IntegerField(required=False, min_value=10, max_value=5000)
    utterance_end_ms = serializers.IntegerField(required=False, min_value=1000, max_value=5000)
    silence_timeout_seconds = serializers.IntegerField(required=False, min_value=3, max_value=120)
    max_call_seconds = serializers.IntegerField(required=False, min_value=30, max_value=4 * 3600)
    extraction_fields = serializers.ListField(
        child=serializers.RegexField(r"^[a-z][a-z0-9_]{0,63}$"), required=False, max_length=30
    )

    def validate_system_prompt(self, value: str) -> str:
        if len(value) > MAX_PROMPT_CHARS:
            raise serializers.ValidationError(
                f"The system prompt is {len(value)} characters; the limit is {MAX_PROMPT_CHARS}.",
                code="prompt_too_long",
            )
        return value

    def validate_voice_id(self, value: str) -> str:
        if not is_known_voice(value):
            raise serializers.ValidationError(
                f"Voice ID {value!r} is not recognised. See GET /v1/voices.", code="invalid_voice_id"
            )
        return value


class AgentOutput(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    extraction_fields = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Agent
        fields = [
            "object",
            "id",
            "name",
            "system_prompt",
            "first_message",
            "voice_id",
            "language",
            "model",
            "temperature",
            "endpointing_ms",
            "utterance_end_ms",
            "silence_timeout_seconds",
            "max_call_seconds",
            "extraction_fields",
            "created_at",
            "updated_at",
        ]

    def get_object(self, agent: Agent) -> str:
        return "agent"


AgentList = list_of(AgentOutput)


class VoiceOutput(serializers.Serializer):
    id = serializers.CharField(help_text="Pass as an agent's `voice_id`.")
    name = serializers.CharField()
    language = serializers.CharField()
    model = serializers.CharField()


VoiceList = list_of(VoiceOutput)
