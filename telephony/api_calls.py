"""/v1/calls: the account's call records (read only)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nixflex.api import parse, render
from nixflex.openapi import api_errors
from nixflex.pagination import PAGE_FIELDS, page_of
from telephony import selectors
from telephony.serializers import CallDetailOutput, CallList, CallListQuery
from telephony.services.calls import get_call


class CallListApi(APIView):
    @extend_schema(operation_id="calls_list", parameters=[CallListQuery], responses=CallList)
    def get(self, request: Request) -> Response:
        filters = parse(CallListQuery, request.query_params)
        page = {name: filters.pop(name) for name in PAGE_FIELDS if name in filters}
        return Response(render(CallList, page_of(selectors.list_calls(**filters), **page)))


class CallDetailApi(APIView):
    @extend_schema(operation_id="calls_get", responses=CallDetailOutput)
    @api_errors("call_not_found")
    def get(self, request: Request, call_id: str) -> Response:
        return Response(render(CallDetailOutput, get_call(call_id)))
