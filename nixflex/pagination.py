"""Cursor pagination shared by every list endpoint: newest first,
`?limit=1..100&starting_after=<id>` -> `{"data": [...], "has_more": bool}`."""

from __future__ import annotations

from typing import Any, Callable

from django.db.models import Q, QuerySet
from rest_framework.request import Request

from nixflex.errors import ApiError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def parse_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError("invalid_request", f"limit must be an integer from 1 to {MAX_LIMIT}.",
                       {"fields": {"limit": [f"Expected an integer from 1 to {MAX_LIMIT}, got {raw!r}."]}})
    return limit


def paginate(request: Request, queryset: QuerySet, render: Callable[[Any], dict[str, Any]],
             cursor_field: str = "pk") -> dict[str, Any]:
    """Keyset pagination on (created_at, pk), so inserts never shift pages."""
    limit = parse_limit(request)
    queryset = queryset.order_by("-created_at", "-pk")
    starting_after = request.query_params.get("starting_after")
    if starting_after:
        anchor = queryset.model.objects.filter(**{cursor_field: starting_after}).values("created_at", "pk").first()
        if anchor is None:
            raise ApiError("invalid_request", "starting_after does not name an object in this list.",
                           {"fields": {"starting_after": [f"Unknown id {starting_after!r}."]}})
        queryset = queryset.filter(
            Q(created_at__lt=anchor["created_at"]) | Q(created_at=anchor["created_at"], pk__lt=anchor["pk"])
        )
    rows = list(queryset[: limit + 1])
    return {"data": [render(row) for row in rows[:limit]], "has_more": len(rows) > limit}
