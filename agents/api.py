"""/v1/agents and /v1/voices."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import services
from agents.models import Agent
from agents.serializers import AgentInput, AgentOutput, render_agent
from agents.voices import VOICES
from nixflex.pagination import paginate


class AgentListApi(APIView):
    @extend_schema(responses=AgentOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(paginate(request, Agent.objects.all(), render_agent))

    @extend_schema(request=AgentInput, responses={201: AgentOutput})
    def post(self, request: Request) -> Response:
        data = AgentInput(data=request.data)
        data.is_valid(raise_exception=True)
        agent = services.create_agent(account=request.user.account, **data.validated_data)
        return Response(render_agent(agent), status=201)


class AgentDetailApi(APIView):
    @extend_schema(responses=AgentOutput)
    def get(self, request: Request, agent_id: str) -> Response:
        agent = services.get_owned_agent(account=request.user.account, agent_id=agent_id)
        return Response(render_agent(agent))

    @extend_schema(request=AgentInput(partial=True), responses=AgentOutput)
    def patch(self, request: Request, agent_id: str) -> Response:
        agent = services.get_owned_agent(account=request.user.account, agent_id=agent_id)
        data = AgentInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        agent = services.update_agent(agent=agent, **data.validated_data)
        return Response(render_agent(agent))

    @extend_schema(responses={200: None})
    def delete(self, request: Request, agent_id: str) -> Response:
        agent = services.get_owned_agent(account=request.user.account, agent_id=agent_id)
        services.delete_agent(account=request.user.account, agent=agent)
        return Response({"id": agent_id, "object": "agent", "deleted": True})


class VoiceListApi(APIView):
    def get(self, request: Request) -> Response:
        return Response({"data": list(VOICES.values()), "has_more": False})
