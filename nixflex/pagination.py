"""Cursor pagination shared by every list endpoint: newest first,
`?limit=1..100&starting_after=<id>` -> `{"data": [...], "has_more": bool}`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

from django.db.models import Model, Q, QuerySet
from rest_framework import serializers
from rest_framework.request import Request

from nixflex.errors import ApiError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
PAGE_FIELDS = ("limit", "starting_after")

M = TypeVar("M", bound=Model)


class _LimitField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        try:
            limit = int(data) if isinstance(data, (int, str)) and not isinstance(data, bool) else 0
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise serializers.ValidationError(f"Expected an integer from 1 to {MAX_LIMIT}, got {data!r}.")
        return limit


class PageQuery(serializers.Serializer):
    """The query string of a list endpoint."""

    limit = _LimitField(required=False, default=DEFAULT_LIMIT, min_value=1, max_value=MAX_LIMIT, help_text="Page size.")
    starting_after = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="The id of the last object of the previous page.",
    )


@dataclass(frozen=True)
class Page(Generic[M]):
    data: list[M]
    has_more: bool


def page_of(
    queryset: QuerySet[M], *, limit: int = DEFAULT_LIMIT, starting_after: str | None = None, cursor_field: str = "pk"
) -> Page[M]:
    """Keyset pagination on (created_at, pk), so inserts never shift pages."""
    queryset = queryset.order_by("-created_at", "-pk")
    if starting_after:
        anchor = (
            queryset.model._default_manager.filter(**{cursor_field: starting_after}).values("created_at", "pk").first()
        )
        if anchor is None:
            raise ApiError(
                "invalid_request",
                "starting_after does not name an object in this list.",
                {"fields": {"starting_after": [f"Unknown id {starting_after!r}."]}},
            )
        queryset = queryset.filter(
            Q(created_at__lt=anchor["created_at"]) | Q(created_at=anchor["created_at"], pk__lt=anchor["pk"])
        )
    rows = list(queryset[: limit + 1])
    return Page(data=rows[:limit], has_more=len(rows) > limit)


@cache
def list_of(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The output serializer of a page of `item`s, named like `AgentList` for `AgentOutput`."""
    name = item.__name__.removesuffix("Output") + "List"
    fields: dict[str, Any] = {
        "data": item(many=True),
        "has_more": serializers.BooleanField(
            help_text="Whether a next page exists (pass the last id as `starting_after`)."
        ),
        "__doc__": f"A page of {item.__name__.removesuffix('Output')} objects, newest first.",
        "__module__": item.__module__,
    }
    return type(name, (serializers.Serializer,), fields)


def paginate(
    request: Request, queryset: QuerySet[M], render: Callable[[M], dict[str, Any]], cursor_field: str = "pk"
) -> dict[str, Any]:
    """A page rendered by a function (for views that have no output serializer yet)."""
    query = PageQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    page = page_of(queryset, cursor_field=cursor_field, **query.validated_data)
    return {"data": [render(row) for row in page.data], "has_more": page.has_more}
