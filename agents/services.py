"""Agents: create, change, delete, and the ownership rule for agent ids."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from agents.models import Agent
from nixflex.errors import ApiError
from tenants.models import Account, AgentDirectoryEntry


def get_owned_agent(*, account: Account, agent_id: str) -> Agent:
    """The agent if this account owns it; `agent_not_owned` if another account does;
    `agent_not_found` otherwise. Must run inside `account`'s schema."""
    agent = Agent.objects.filter(id=agent_id).first()
    if agent is not None:
        return agent
    owner = AgentDirectoryEntry.objects.filter(agent_id=agent_id).values_list("account_id", flat=True).first()
    if owner is not None and owner != account.pk:
        raise ApiError("agent_not_owned", details={"agent_id": agent_id})
    raise ApiError("agent_not_found", details={"agent_id": agent_id})


@transaction.atomic
def create_agent(*, account: Account, **fields: Any) -> Agent:
    agent = Agent.objects.create(**fields)
    # Same transaction: the directory row (public schema) and the agent commit together.
    AgentDirectoryEntry.objects.create(agent_id=agent.id, account=account)
    return agent


def update_agent(*, agent: Agent, **fields: Any) -> Agent:
    for name, value in fields.items():
        setattr(agent, name, value)
    agent.save()
    return agent


@transaction.atomic
def delete_agent(*, account: Account, agent: Agent) -> None:
    if agent.phone_numbers.exists():
        raise ApiError(
            "agent_has_phone_numbers", details={"agent_id": agent.id, "phone_numbers": agent.phone_numbers.count()}
        )
    agent.delete()
    AgentDirectoryEntry.objects.filter(agent_id=agent.id, account=account).delete()
