"""The agent runtime's public API: what the rest of the appliance may use."""

from appliance.runtime.agent import Agent, NoState, accepted_kinds
from appliance.runtime.clock import Clock, FakeClock, SystemClock
from appliance.runtime.context import Context
from appliance.runtime.fanout import TaskOutcome
from appliance.runtime.graph import JobTree, TaskGraph, TaskNode, render_chain, render_tree
from appliance.runtime.knowledge import KnowledgeStore
from appliance.runtime.runtime import RUNTIME_TOPIC, InstanceInfo, Runtime, running
from appliance.runtime.store import Store
from appliance.runtime.watch import Watch

__all__ = [
    "RUNTIME_TOPIC",
    "Agent",
    "Clock",
    "Context",
    "FakeClock",
    "InstanceInfo",
    "JobTree",
    "KnowledgeStore",
    "NoState",
    "Runtime",
    "Store",
    "SystemClock",
    "TaskGraph",
    "TaskNode",
    "TaskOutcome",
    "Watch",
    "accepted_kinds",
    "render_chain",
    "render_tree",
    "running",
]
