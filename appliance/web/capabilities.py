"""What the panel asks of the rest of the appliance, as small protocols the app supplies.

``web/`` may not import the hardware layer, the router or the agents (STYLE.md), so anything
of theirs the panel shows or changes comes through one of these, built in ``app.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

RoutePreview = Callable[[str], Awaitable[msgspec.Struct]]
"""The router's decision for a command, without running it (a Struct this layer encodes)."""

PlanPreview = Callable[[str], Awaitable[msgspec.Struct]]
"""The planner's plan for a command, without running it (a Struct this layer encodes): its
steps and whether it is destructive, scheduled or uncertain (the panel asks before those)."""


class DeviceStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The board as an operator sees it: LEDs, display link, and what the display shows."""

    board: str
    simulated: bool
    leds: str  # off, booting, ready, busy, error, updating
    load: int = 0
    display_connected: bool = False
    display_frames_sent: int = 0
    display_text: list[str] = msgspec.field(default_factory=list)
    root_read_only: bool = False  # the image mounts its root read-only; a host does not
    data_free_bytes: int = 0  # where the store lives: a full disk is an operator's problem


class RouterStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where the router's model runs, as built at start: the execution provider and the
    device that really run it (``app.py`` copies the router's placement), what the board
    wanted, most wanted first, and why not the first of that when it is not (``fallback``,
    empty when it is). ``nodes_on_provider`` of the model's ``nodes`` run on ``provider``;
    the CPU provider runs the rest."""

    provider: str
    device: str = ""
    vendor: str = ""
    wanted: list[str] = msgspec.field(default_factory=list)
    library: str = ""
    fallback: str = ""
    nodes: int = 0
    nodes_on_provider: int = 0


class DeviceView(Protocol):
    def status(self) -> DeviceStatus: ...

    def display_png(self) -> bytes | None:
        """The display's latest picture, when the hardware layer can draw it."""
        ...


class ScopeControl(Protocol):
    """The scan scope: read it, or replace it (checked, applied live, and saved)."""

    def get(self) -> list[str]: ...

    def set(self, networks: list[str], *, confirm_large: bool = False) -> list[str]:
        """Apply and save ``networks``; returns them normalised (duplicates and networks
        inside another dropped). Raises BadCommand (nothing changed) naming an entry that is
        not a network of hosts, or a range past the size limit unless ``confirm_large``."""
        ...
