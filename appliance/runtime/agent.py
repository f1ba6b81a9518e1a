"""Agent types: templates whose typed handler methods the runtime discovers from type hints.

An agent type is a class; each spawned instance is an object of it with its own task id and
its own state per job. A handler is any public ``async def`` method whose second parameter is
annotated with an ``Event`` subclass (or a union of them); the annotation is the routing table,
so accepting a new event type is one annotated method, never a string to keep in sync.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeAlias

import msgspec

from appliance.events import Event, Started
from appliance.runtime.step import StepInput, StepParams

Handler = Callable[[Any, Any, Any], Awaitable[Any]]

# How the supervisor treats an error: retry it later, restart the instance, scale/shed, or
# just record it (the event was bad, the instance is fine).
ErrorClass: TypeAlias = Literal["transient", "fatal", "resource", "rejected"]


class DuplicateAgentType(TypeError, ValueError):
    """Two agent types with one name: the name is what commands, events and the graph use,
    so the second is refused at registration (a ValueError too, as it always was)."""


class NoState(msgspec.Struct):
    """State of an agent type that keeps none."""


class Agent:
    """Base of every agent type. Subclasses set the class attributes and write handlers.

    Handlers run inline until their first real suspension (like Python 3.12's eager tasks) and
    only then become a Task. So until a handler's first ``await`` that suspends,
    ``asyncio.current_task()`` is None: open ``asyncio.timeout``/``TaskGroup`` after it, or rely
    on the runtime's per-handler deadline (``handler_timeout_s``), which is always enforced.
    A type whose handlers need a current task from their first line sets ``eager = False``:
    each of its events then starts in a Task of its own (fine for I/O-bound work).

    Change ``ctx.state`` only after the handler's last ``await``, as a transaction commits
    at its end: the state is snapshotted when a handler succeeds, and a restart recovers the
    last snapshot and runs interrupted events again, so this is what makes each event take
    effect exactly once.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    capabilities: ClassVar[tuple[str, ...]] = ()
    examples: ClassVar[tuple[str, ...]] = ()
    display_name: ClassVar[str] = ""
    routable: ClassVar[bool] = True  # False: the router never sends commands here (internal)
    # True: the appliance runs it for itself (a standing watcher, a vote tracker); it is
    # started only by ``Runtime.start_internal`` or by the code that owns it, and a client can
    # neither start it, size its pool, nor send it events (its kinds are not a client's)
    internal: ClassVar[bool] = False
    topics: ClassVar[tuple[str, ...]] = ()
    State: ClassVar[type[msgspec.Struct]] = NoState
    concurrency: ClassVar[int] = 16
    inbox_size: ClassVar[int] = 256
    handler_timeout_s: ClassVar[float] = 30.0
    eager: ClassVar[bool] = True
    # Supervision (see appliance/supervisor/): what a crash of this type's handlers costs.
    snapshot: ClassVar[bool] = True  # commit state after each handled event (State not NoState)
    restart_strategy: ClassVar[Literal["one_for_one", "one_for_all"]] = "one_for_one"
    max_restarts: ClassVar[int] = 5  # restart intensity: at most this many restarts ...
    restart_window_s: ClassVar[float] = 60.0  # ... in this many seconds, then escalate
    error_classes: ClassVar[Mapping[type[BaseException], ErrorClass]] = {}  # overrides
    pool_min: ClassVar[int] = 1
    pool_max: ClassVar[int] = 8
    # the start event's field naming the address or network the task must reach: in a
    # fleet, a task this device's scope does not cover goes to a device whose scope does
    reach: ClassVar[str | None] = None
    # start events this type handles from what they carry alone (nothing of its device's
    # own: its scans, its firewall, its report): in a fleet, such a task may run on another
    # device that serves the type when this one is busy and that one much less so
    anywhere: ClassVar[tuple[type[Event], ...]] = ()

    handlers: ClassVar[Mapping[type[Event], Handler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr in ("name", "description"):
            if not isinstance(cls.__dict__.get(attr, getattr(cls, attr, None)), str):
                raise TypeError(f"agent type {cls.__qualname__} must set {attr} = '...'")
        if cls.concurrency < 1 or cls.inbox_size < 1:
            raise TypeError(f"agent type {cls.name}: concurrency and inbox_size must be >= 1")
        cls.handlers = _discover_handlers(cls)
        if not cls.display_name:
            cls.display_name = cls.name.replace("_", " ").title().replace(" ", "")

    @classmethod
    def start_for(cls, command: str) -> Event | None:
        """The start event for a free-text command given to this type. By default the text
        goes over as ``Started`` to a type that handles it; None means the instance just
        lives, taking events. A type whose work needs structured input parses the command
        here and raises BadCommand if it can't."""
        return Started(objective=command) if Started in cls.handlers else None

    @classmethod
    def start_for_step(
        cls, step_text: str, params: StepParams, inputs: Sequence[StepInput]
    ) -> Event | None:
        """The start event for one step of a plan: its clause, the parameters the planner
        found in it, and the results of the steps it waited for (or of earlier jobs it refers
        to). By default the clause goes over as ``Started``, like a command; a type that
        works on structured input builds its own event here and raises BadCommand if the
        step does not give it enough. None: this type takes no step."""
        return Started(objective=step_text) if Started in cls.handlers else None


def _discover_handlers(cls: type[Agent]) -> dict[type[Event], Handler]:
    found: dict[type[Event], Handler] = {}
    owner: dict[type[Event], str] = {}
    for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction):
        if name.startswith("_"):
            continue
        params = list(inspect.signature(member).parameters)
        if len(params) < 2:
            continue
        try:
            hints = typing.get_type_hints(member)
        except NameError as err:  # an annotation names something its module does not import
            raise TypeError(
                f"agent type {cls.__qualname__}: the annotations of {name}() do not resolve "
                f"({err}); import the event class in the module that defines the agent"
            ) from err
        handled = _event_types(hints.get(params[1]))
        if not handled:
            # a public async method is a handler: without an Event annotation it would
            # silently never be called, so say so now rather than when no event arrives
            raise TypeError(
                f"agent type {cls.__qualname__}: {name}() looks like a handler but its "
                f"parameter {params[1]!r} is not annotated with an Event subclass; annotate "
                f"it (async def {name}(self, {params[1]}: MyEvent, ctx: Context[State])), "
                f"or name the method _{name} if it is not a handler"
            )
        for event_type in handled:
            if event_type in found:
                raise TypeError(
                    f"agent type {cls.name}: both {owner[event_type]}() and {name}() "
                    f"handle {event_type.__name__}"
                )
            found[event_type] = member
            owner[event_type] = name
    return found


def _event_types(hint: object) -> list[type[Event]]:
    if isinstance(hint, type):
        return [hint] if issubclass(hint, Event) and hint is not Event else []
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(hint) for t in _event_types(arg)]
    return []


def accepted_kinds(agent_type: type[Agent]) -> list[str]:
    """The tags of the events an agent type accepts, for error messages and the panel."""
    return sorted(str(t.__struct_config__.tag) for t in agent_type.handlers)
