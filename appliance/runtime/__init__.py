"""The agent runtime's public API: what the rest of the appliance may use."""

from appliance.runtime.agent import Agent, NoState, accepted_kinds
from appliance.runtime.clock import Clock, FakeClock, SystemClock
from appliance.runtime.context import Context
from appliance.runtime.graph import (
    JobResult,
    JobTree,
    TaskGraph,
    TaskNode,
    render_chain,
    render_tree,
)
from appliance.runtime.instance import InstanceInfo
from appliance.runtime.knowledge import KnowledgeStore
from appliance.runtime.outcome import TaskOutcome
from appliance.runtime.recovery import Action, Decision, Failure, LetItFail, Supervision
from appliance.runtime.runtime import RUNTIME_TOPIC, HandlerHung, Runtime, running
from appliance.runtime.step import SEVERITIES, Severity, StepInput, StepParams, TimeWindow
from appliance.runtime.store import Store
from appliance.runtime.watch import Watch

__all__ = [
    "RUNTIME_TOPIC",
    "SEVERITIES",
    "Action",
    "Agent",
    "Clock",
    "Context",
    "Decision",
    "Failure",
    "FakeClock",
    "HandlerHung",
    "InstanceInfo",
    "JobResult",
    "JobTree",
    "KnowledgeStore",
    "LetItFail",
    "NoState",
    "Runtime",
    "Severity",
    "StepInput",
    "StepParams",
    "Store",
    "Supervision",
    "SystemClock",
    "TaskGraph",
    "TaskNode",
    "TaskOutcome",
    "TimeWindow",
    "Watch",
    "accepted_kinds",
    "render_chain",
    "render_tree",
    "running",
]
