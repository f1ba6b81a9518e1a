"""The agent runtime's public API: what the rest of the appliance may use.

Where things live, for whoever changes them:

- ``runtime.py``: ``Runtime``, the facade, and dispatch, the hot path, kept in one place:
  addressing, the ready queue, inline first steps, adopted handlers, how a handler ends.
- ``registry.py``: the registered agent types and the one typed decoder for every edge.
- ``pools.py``: the idle instances that serve events sent to a type as a whole.
- ``failures.py``: carrying out what the supervision policy (``recovery.py``) decides.
- ``journal.py``: records to the coordination graph (``graph.py``) and to watchers
  (``watch.py``), always both.
- ``deadlines.py``: request timeouts; ``eager.py``: a handler's inline first step.
- ``instance.py``, ``context.py``, ``agent.py``: an instance, what its handler gets, a type.
- ``store.py``, ``audit.py``, ``knowledge.py``: SQLite, the audit trail, shared knowledge.
"""

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
