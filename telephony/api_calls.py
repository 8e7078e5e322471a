"""/v1/calls: the account's call records (read only)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nixflex.pagination import paginate
from telephony import selectors
from telephony.services.calls import get_call, render_call

_FILTERS = [
    OpenApiParameter("agent_id", str),
    OpenApiParameter("customer_id", str),
    OpenApiParameter("phone_number", str, description="Our number on the call (E.164)"),
    OpenApiParameter("status", str, enum=list(selectors.CALL_STATUSES)),
    OpenApiParameter("direction", str, enum=list(selectors.CALL_DIRECTIONS)),
    OpenApiParameter("created_after", str, description="ISO 8601, exclusive"),
    OpenApiParameter("created_before", str, description="ISO 8601, exclusive"),
    OpenApiParameter("limit", int),
    OpenApiParameter("starting_after", str, description="A call id: the page after it"),
]


class CallListApi(APIView):
    @extend_schema(operation_id="calls_list", parameters=_FILTERS, responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(paginate(request, selectors.list_calls(request.query_params), render_call))


class CallDetailApi(APIView):
    @extend_schema(operation_id="calls_get", responses={200: dict})
    def get(self, request: Request, call_id: str) -> Response:
        return Response(render_call(get_call(call_id), detail=True))
