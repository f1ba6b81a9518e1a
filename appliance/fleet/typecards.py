"""The agent types only other devices run, as this device's router needs them: type cards.

A free-text command is routed by what each agent type says of itself. A device knows that of
its own types; of a type that only other devices run it knows the name alone, from their
heartbeats, and a name routes nothing. So each device answers for its routable types with a
card each (the type's own words: description, capabilities, examples), and says in its
heartbeat a digest of them; another device asks for the cards of the types it does not run
itself when that digest is new to it (so a fleet of like devices asks for none: the built-in
types' cards are 67 KB).

A type stays routable here while a device heard within ``lost_after_s`` runs it, and never
shadows one of this device's own: a command is only sent away for a type not run here.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING

import msgspec

from appliance.fleet.subjects import TOKEN

if TYPE_CHECKING:
    from appliance.runtime import Agent

log = logging.getLogger(__name__)

# What one device may ask another's router to hold: bounds on a peer's cards, so a broken
# or hostile device cannot make this one embed without end. The built-in types have up to
# 431 phrases each (67 KB of cards for all four), none over 110 characters.
MAX_CARDS = 256
MAX_PHRASES = 1_000  # capabilities and examples of one type, together
MAX_PHRASE = 300  # characters in one capability or example
MAX_DESCRIPTION = 4_000


class TypeCard(msgspec.Struct, frozen=True, kw_only=True):
    """What one agent type says of itself: what the router embeds to route to it."""

    name: str
    description: str
    capabilities: list[str] = []
    examples: list[str] = []


Changed = Callable[[Sequence[TypeCard], Sequence[str]], None]

_cards_decoder = msgspec.msgpack.Decoder(list[TypeCard])
_names_decoder = msgspec.msgpack.Decoder(list[str])


def cards_of(types: Iterable[type[Agent]]) -> list[TypeCard]:
    """The cards of the types a device serves that a command may name: not internal ones,
    nor those that take events only."""
    return [
        TypeCard(
            name=cls.name,
            description=cls.description,
            capabilities=list(cls.capabilities),
            examples=list(cls.examples),
        )
        for cls in types
        if cls.routable and not cls.internal
    ]


def encode(cards: Sequence[TypeCard]) -> bytes:
    return msgspec.msgpack.encode(sorted(cards, key=lambda c: c.name))


def asked(data: bytes) -> list[str]:
    """The type names a request for cards names (msgpack list of str): DecodeError if not."""
    return _names_decoder.decode(data)


def digest(cards: Sequence[TypeCard]) -> str:
    """What a heartbeat says of the cards: a change to any type's words is a new digest."""
    return hashlib.sha256(encode(cards)).hexdigest()[:16]


def decode(data: bytes) -> tuple[list[TypeCard], list[str]]:
    """A peer's cards held to the bounds above, and why each card left out was: one card
    out of bounds costs that type alone. What is not a list of cards at all raises
    msgspec's DecodeError (a ValueError); so do more cards than MAX_CARDS."""
    cards = _cards_decoder.decode(data)
    if len(cards) > MAX_CARDS:
        raise ValueError(f"{len(cards)} type cards, more than {MAX_CARDS}")
    kept: list[TypeCard] = []
    problems: list[str] = []
    for card in cards:
        problem = _out_of_bounds(card)
        if problem:
            problems.append(f"{card.name[:40]!r}: {problem}")
        else:
            kept.append(card)
    return kept, problems


def _out_of_bounds(card: TypeCard) -> str:
    if not TOKEN.fullmatch(card.name):
        return "not an agent type's name"
    phrases = [*card.capabilities, *card.examples]
    if len(phrases) > MAX_PHRASES:
        return f"{len(phrases)} phrases, more than {MAX_PHRASES}"
    if len(card.description) > MAX_DESCRIPTION:
        return f"a description over {MAX_DESCRIPTION} characters"
    if any(len(p) > MAX_PHRASE for p in phrases):
        return f"a phrase over {MAX_PHRASE} characters"
    return ""


class FleetTypes:
    """The routable types other devices run and this one does not, kept from their cards:
    listeners hear each change (the cards that came, the names that went)."""

    def __init__(self, local: Callable[[], Collection[str]]) -> None:
        self._local = local  # the names of the types this device runs
        self._by_device: dict[str, tuple[str, list[TypeCard]]] = {}  # digest, cards
        self._routable: dict[str, TypeCard] = {}  # what the listeners were last told
        self._listeners: list[Changed] = []

    def on_change(self, listener: Changed) -> None:
        self._listeners.append(listener)
        if self._routable:
            listener(list(self._routable.values()), [])

    def wanted(self, device: str, said: str, served: Collection[str]) -> list[str]:
        """The types whose cards to ask a device for, after a heartbeat that says it serves
        ``served`` with cards of digest ``said``: none while that digest is the one held, and
        only those this device does not run itself (a fleet of like devices asks nothing)."""
        held = self._by_device.get(device)
        if not said or (held is not None and held[0] == said):
            return []
        local = set(self._local())
        wanted = sorted(name for name in served if name not in local)
        if not wanted:
            self._by_device[device] = (said, [])  # nothing to ask: held as known
        return wanted

    def learned(
        self, device: str, said: str, cards: Sequence[TypeCard], served: Collection[str]
    ) -> None:
        """A device's cards, as it answered when its heartbeat said ``said``: that digest is
        not asked for again, even if some cards were left out. A card for a type its
        heartbeat does not say it serves is left out too (it could not take the command)."""
        kept = [c for c in cards if c.name in served]
        self._by_device[device] = (said, kept)

    def card(self, name: str) -> TypeCard | None:
        return self._routable.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._routable)

    def reconcile(self, devices_up: Iterable[str]) -> None:
        """Compare what the devices up run with what the listeners hold, and tell them the
        difference. A type that came to run here too is dropped without a word: the
        router already holds this device's own phrases for it."""
        local = set(self._local())
        now: dict[str, TypeCard] = {}
        for device in sorted(devices_up):
            for card in self._by_device.get(device, ("", []))[1]:
                if card.name not in local:
                    now.setdefault(card.name, card)
        came = [c for name, c in now.items() if self._routable.get(name) != c]
        went = [name for name in self._routable if name not in now and name not in local]
        self._routable = now
        if came or went:
            log.info(
                "fleet: routes to %s%s",
                ", ".join(sorted(now)) or "none of the fleet's types",
                f"; no longer to {', '.join(went)}" if went else "",
            )
            for listener in self._listeners:
                listener(came, went)
