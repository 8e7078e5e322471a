"""What every /v1/ view does the same way: parse input with a serializer, render output
with a serializer, and name the calling account."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from tenants.models import Account, ApiKey


def parse(serializer_class: type[serializers.Serializer], data: Any, *, partial: bool = False) -> dict[str, Any]:
    """The validated data of a request body or query string; ValidationError (rendered as
    the error envelope) when it does not validate."""
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@cache
def _shared(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    serializer = serializer_class()
    _bind_fields(serializer)
    return serializer


def _bind_fields(field: object) -> None:
    if isinstance(field, serializers.ListSerializer):
        _bind_fields(field.child)
    elif isinstance(field, serializers.Serializer):
        for child in field.fields.values():
            _bind_fields(child)


def render(serializer_class: type[serializers.Serializer], instance: Any) -> dict[str, Any]:
    """`serializer_class(instance).data`, by one shared serializer per class: a serializer
    copies and binds its fields on every instantiation (about a millisecond for a model
    serializer), while rendering itself is the same code either way. Output serializers
    hold no per-request state, so sharing one is safe."""
    representation: dict[str, Any] = _shared(serializer_class).to_representation(instance)
    return representation


def request_api_key(request: Request) -> ApiKey:
    """The API key that authenticated this request (ApiKeyAuthentication)."""
    api_key = request.auth
    if not isinstance(api_key, ApiKey):  # only reachable if a view drops the authentication
        raise TypeError("request was not authenticated with an API key")
    return api_key


def request_account(request: Request) -> Account:
    """The account whose API key authenticated this request (ApiKeyAuthentication)."""
    return request_api_key(request).account


class DeletedOutput(serializers.Serializer):
    """The answer to a DELETE: which object is gone."""

    id = serializers.CharField()
    object = serializers.CharField(help_text="The kind of object deleted, like `agent`.")
    deleted = serializers.BooleanField()


def deleted(object_name: str, object_id: str) -> Mapping[str, Any]:
    return render(DeletedOutput, {"id": object_id, "object": object_name, "deleted": True})
