"""The actions, as data: a tagged msgspec union, so a stored action outlives class names and
the API, the CLI and the graph all show the same thing.

Destructive is a property of the kind, not of the request: a block or a quarantine cuts a
host off, and a revoke takes back an exemption, so those never run on a guess (see
``service.py``: they wait for an approval); allow-listing and notifying change nothing a
person would have to undo in a hurry."""

from __future__ import annotations

from typing import ClassVar, Literal, TypeAlias

import msgspec

Channel = Literal["display", "journal", "webhook"]


class Action(msgspec.Struct, frozen=True, kw_only=True, tag_field="action"):
    """Base of the action kinds; annotate fields with ``AnyAction``."""

    destructive: ClassVar[bool] = False
    reason: str = ""  # why it was asked for (the finding, the command): shown with approvals

    @property
    def host(self) -> str | None:
        """The address the action is about, checked against the scope; None: no host."""
        return None

    def describe(self) -> str:
        raise NotImplementedError


class OnHost(Action, frozen=True, kw_only=True):
    """Base of the actions on one host's firewall entry; ``verb`` says what is done to it."""

    verb: ClassVar[str]
    address: str

    @property
    def host(self) -> str:
        return self.address

    def describe(self) -> str:
        return self.verb.format(self.address)


class Block(OnHost, frozen=True, kw_only=True, tag="block"):
    """Drop what ``address`` sends to the appliance or through it."""

    destructive: ClassVar[bool] = True
    verb: ClassVar[str] = "block {}"


class Quarantine(OnHost, frozen=True, kw_only=True, tag="quarantine"):
    """Cut ``address`` off both ways: nothing from it, nothing to it, nothing through."""

    destructive: ClassVar[bool] = True
    verb: ClassVar[str] = "quarantine {}"


class AllowList(OnHost, frozen=True, kw_only=True, tag="allow"):
    """Exempt ``address`` from blocks and quarantines (a block asked for later is refused)."""

    verb: ClassVar[str] = "allow-list {}"


class Revoke(OnHost, frozen=True, kw_only=True, tag="revoke"):
    """Take back ``address``'s allow-list entry: blocks apply to it again."""

    destructive: ClassVar[bool] = True
    verb: ClassVar[str] = "revoke the allow-list entry of {}"


class Notify(Action, frozen=True, kw_only=True, tag="notify"):
    """Tell people: a line on the device's display, a warning in the system journal, and a
    POST to the admin's webhook where one is configured (``webhook_url``)."""

    message: str
    channels: tuple[Channel, ...] = ("display", "journal", "webhook")

    def describe(self) -> str:
        return f"notify ({', '.join(self.channels)}): {self.message}"


class Ticket(Action, frozen=True, kw_only=True, tag="ticket"):
    """Open a ticket: the admin's ticket webhook (``ticket_url``) gets ``ticket_template``
    filled with the title, the body and the host."""

    title: str
    body: str = ""
    about: str = ""  # the host it is about, if any

    def describe(self) -> str:
        return f"open a ticket: {self.title}"


AnyAction: TypeAlias = Block | Quarantine | AllowList | Revoke | Notify | Ticket
FIREWALL_KINDS = (Block, Quarantine, AllowList, Revoke)

encode_action = msgspec.json.Encoder().encode
decode_action = msgspec.json.Decoder(AnyAction).decode
