"""/v1/agents and /v1/voices."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import services
from agents.models import Agent
from agents.serializers import AgentInput, AgentList, AgentOutput, VoiceList
from agents.voices import VOICES
from nixflex.api import DeletedOutput, deleted, parse, render, request_account
from nixflex.openapi import api_errors
from nixflex.pagination import PageQuery, page_of

_AGENT_ERRORS = ("agent_not_found", "agent_not_owned")
_INPUT_ERRORS = ("prompt_too_long", "invalid_voice_id")


class AgentListApi(APIView):
    @extend_schema(parameters=[PageQuery], responses=AgentList)
    def get(self, request: Request) -> Response:
        page = page_of(Agent.objects.all(), **parse(PageQuery, request.query_params))
        return Response(render(AgentList, page))

    @extend_schema(request=AgentInput, responses={201: AgentOutput})
    @api_errors(*_INPUT_ERRORS)
    def post(self, request: Request) -> Response:
        agent = services.create_agent(account=request_account(request), **parse(AgentInput, request.data))
        return Response(render(AgentOutput, agent), status=201)


class AgentDetailApi(APIView):
    @extend_schema(responses=AgentOutput)
    @api_errors(*_AGENT_ERRORS)
    def get(self, request: Request, agent_id: str) -> Response:
        agent = services.get_owned_agent(account=request_account(request), agent_id=agent_id)
        return Response(render(AgentOutput, agent))

    @extend_schema(request=AgentInput(partial=True), responses=AgentOutput)
    @api_errors(*_AGENT_ERRORS, *_INPUT_ERRORS)
    def patch(self, request: Request, agent_id: str) -> Response:
        agent = services.get_owned_agent(account=request_account(request), agent_id=agent_id)
        agent = services.update_agent(agent=agent, **parse(AgentInput, request.data, partial=True))
        return Response(render(AgentOutput, agent))

    @extend_schema(responses={200: DeletedOutput})
    @api_errors(*_AGENT_ERRORS, "agent_has_phone_numbers")
    def delete(self, request: Request, agent_id: str) -> Response:
        account = request_account(request)
        services.delete_agent(account=account, agent=services.get_owned_agent(account=account, agent_id=agent_id))
        return Response(deleted("agent", agent_id))


class VoiceListApi(APIView):
    @extend_schema(responses=VoiceList)
    def get(self, request: Request) -> Response:
        return Response(render(VoiceList, {"data": list(VOICES.values()), "has_more": False}))
