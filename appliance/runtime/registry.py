"""The registered agent types, and the one typed decoder every edge decodes events with.

Kept apart from dispatch because it changes rarely (a type registered at start or by an
extension) while dispatch runs per event; the decoder is rebuilt only after a registration.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from appliance.errors import BadEvent, EventNotAccepted, InternalAgentType, UnknownAgentType
from appliance.events import Envelope, Event, Started
from appliance.runtime.agent import Agent, DuplicateAgentType, Handler, accepted_kinds
from appliance.runtime.instance import AgentKind


class TypeRegistry:
    def __init__(self) -> None:
        self.kinds: dict[str, AgentKind] = {}
        self.topics: dict[str, list[AgentKind]] = {}
        self._event_types: set[type[Event]] = {Started}
        self._decoder: msgspec.json.Decoder[Any] | None = None
        self._packed: msgspec.msgpack.Decoder[Any] | None = None
        self._results: dict[tuple[str, type[Event]], Any] = {}
        self._listeners: list[Callable[[type[Agent]], None]] = []

    def register(self, cls: type[Agent], factory: Callable[[], Agent] | None = None) -> None:
        if cls.name in self.kinds:
            other = self.kinds[cls.name].cls
            raise DuplicateAgentType(
                f"agent type {cls.__qualname__}: name = {cls.name!r} is already registered "
                f"(by {other.__module__}.{other.__qualname__}); give it a name of its own"
            )
        kind = AgentKind(cls, factory or cls)
        self.kinds[cls.name] = kind
        for topic in cls.topics:
            self.topics.setdefault(topic, []).append(kind)
        self._event_types.update(cls.handlers)
        self._decoder = self._packed = None
        for listener in self._listeners:
            listener(cls)

    def on_register(self, listener: Callable[[type[Agent]], None]) -> None:
        self._listeners.append(listener)
        for kind in list(self.kinds.values()):
            listener(kind.cls)

    def kind(self, name: str) -> AgentKind:
        kind = self.kinds.get(name)
        if kind is None:
            raise UnknownAgentType(
                f"no agent type {name!r}; known: {', '.join(sorted(self.kinds)) or 'none'}"
            )
        return kind

    def startable(self, name: str) -> type[Agent]:
        kind = self.kind(name)
        if kind.cls.internal:
            raise InternalAgentType(
                f"agent type {kind.name!r} is internal: the appliance runs it for itself, "
                f"never for a command; commands go to: {', '.join(self.startable_types())}"
            )
        return kind.cls

    def startable_types(self) -> list[str]:
        return sorted(name for name, kind in self.kinds.items() if not kind.cls.internal)

    def client_kinds(self) -> list[str]:
        return sorted(
            {
                str(event_type.__struct_config__.tag)
                for kind in self.kinds.values()
                if not kind.cls.internal
                for event_type in kind.handlers
            }
        )

    def failed(self) -> dict[str, str]:
        return {k.name: k.failed for k in self.kinds.values() if k.failed is not None}

    def decode_envelope(self, data: bytes | str) -> Envelope[Event]:
        if self._decoder is None:
            union = _union(self._event_types)
            self._decoder = msgspec.json.Decoder(Envelope[union])  # type: ignore[valid-type]
        try:
            env: Envelope[Event] = self._decoder.decode(data)
        except msgspec.DecodeError as err:
            raise BadEvent(f"not a valid event envelope: {err}") from err
        return env

    def decode_packed_envelope(self, data: bytes) -> Envelope[Event]:
        """``decode_envelope`` for msgpack, the broker's compact form: the same types."""
        if self._packed is None:
            union = _union(self._event_types)
            self._packed = msgspec.msgpack.Decoder(Envelope[union])  # type: ignore[valid-type]
        try:
            env: Envelope[Event] = self._packed.decode(data)
        except msgspec.DecodeError as err:
            raise BadEvent(f"not a valid event envelope: {err}") from err
        return env

    def result_type(self, agent_type: str, event_type: type[Event]) -> Any:
        """What the type's handler for ``event_type`` returns, from its annotation (Any when
        it names none that resolves): a result from another device is decoded as this."""
        key = (agent_type, event_type)
        if key not in self._results:
            handler = self.kind(agent_type).handlers.get(event_type)
            try:
                hints = typing.get_type_hints(handler) if handler is not None else {}
            except (NameError, TypeError):
                hints = {}
            self._results[key] = hints.get("return", Any)
        return self._results[key]

    def decode_packed_event(self, data: bytes) -> Event:
        """``decode_event`` for msgpack (a start event another device placed here)."""
        try:
            event: Event = msgspec.msgpack.decode(data, type=_union(self._event_types))
        except msgspec.DecodeError as err:
            raise BadEvent(f"not a valid event: {err}") from err
        return event

    def decode_event(self, data: bytes | str) -> Event:
        try:
            event: Event = msgspec.json.decode(data, type=_union(self._event_types))
        except msgspec.DecodeError as err:
            raise BadEvent(f"not a valid event: {err}") from err
        return event


def start_handler(kind: AgentKind, start: Event | None) -> Handler | None:
    """The handler a task's start event goes to (None: the type takes no ``Started``), or
    EventNotAccepted, checked before anything about the task is recorded."""
    if start is None:
        return kind.handlers.get(Started)
    handler = kind.handlers.get(type(start))
    if handler is None:
        raise EventNotAccepted(not_accepted(kind, start))
    return handler


def not_accepted(kind: AgentKind, event: Event) -> str:
    tag = event.__struct_config__.tag
    return (
        f"agent type {kind.name!r} does not accept {tag!r} events; it accepts: "
        f"{', '.join(accepted_kinds(kind.cls)) or 'nothing'}"
    )


def _union(types_: Iterable[type[Event]]) -> Any:
    ordered = tuple(sorted(types_, key=lambda t: str(t.__struct_config__.tag)))
    if len(ordered) == 1:
        return ordered[0]
    return typing.Union[ordered]  # noqa: UP007
