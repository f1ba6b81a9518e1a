"""The built-in agents of the network-security appliance."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from appliance.actions import firewall
from appliance.actions.service import DEFAULT_TICKET, Actions
from appliance.actions.webhook import Webhook
from appliance.agents.analyzer import Analyzer
from appliance.agents.collector import DataCollector
from appliance.agents.coordinator import Coordinator
from appliance.agents.executor import ApprovalPolicy, Executor
from appliance.agents.netwatch import NetworkWatcher
from appliance.agents.rules import PortRules
from appliance.runtime import Runtime
from appliance.scope import Scope
from appliance.settings import Settings

__all__ = [
    "BUILTIN_TYPES",
    "Analyzer",
    "Coordinator",
    "DataCollector",
    "Executor",
    "register_builtin",
]

BUILTIN_TYPES = (Coordinator, DataCollector, Analyzer, Executor)


class Builtins(NamedTuple):
    scope: Scope  # the panel changes it in place
    actions: Actions  # the executor's hands: the app serves their approvals


def register_builtin(
    runtime: Runtime,
    settings: Settings,
    load_firewall: Callable[[firewall.Entries], None] = firewall.load,
) -> Builtins:
    """Register the four built-in types, every one bound to the configured scope; the
    executor's actions change the firewall with ``load_firewall``."""
    scope = Scope(settings.scope, confirm_large=settings.scope_confirm_large)
    ca = settings.webhook_ca_file
    actions = Actions(
        runtime.store,
        runtime.clock,
        scope,
        record=runtime.record,
        load_firewall=load_firewall,
        deadline_s=settings.admin_deadline_s,
        webhook=Webhook(settings.webhook_url, ca) if settings.webhook_url else None,
        tickets=Webhook(settings.ticket_url, ca) if settings.ticket_url else None,
        ticket_template=settings.ticket_template or DEFAULT_TICKET,
    )
    rules = PortRules.load(settings.rules_file)
    runtime.register(
        Coordinator,
        lambda: Coordinator(
            scope, settings.ports, agent_class=runtime.agent_class, past=runtime.graph.results
        ),
    )
    runtime.register(DataCollector, lambda: DataCollector(scope, settings))
    runtime.register(Analyzer, lambda: Analyzer(rules))
    approval = ApprovalPolicy(
        by=settings.approval,
        voters=settings.approval_voters,
        quorum=settings.approval_quorum,
        deadline_s=settings.approval_deadline_s,
    )
    runtime.register(Executor, lambda: Executor(scope, actions, approval))
    # autonomous, not routed to: it reacts to hot-plug events (hal.hotplug), not commands
    runtime.register(NetworkWatcher, lambda: NetworkWatcher(scope, runtime.submit, runtime.record))
    return Builtins(scope, actions)
