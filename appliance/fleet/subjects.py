"""Subject names, and each device's permissions derived from the same names.

Every subject a device publishes on ends in (or is) its own name, and the broker lets a
device publish on its own subjects alone. A receiver therefore reads the sender from the
subject: a device cannot send a heartbeat, a request or a reply as another. Replies go to the
requester's own inbox (``_INBOX.<name>``), which no other device may read.
"""

from __future__ import annotations

from typing import Any

ROOT = "qey"
HEARTBEATS = f"{ROOT}.dev.*"
REQUESTS = f"{ROOT}.req.*.*"


def heartbeat(device: str) -> str:
    return f"{ROOT}.dev.{device}"


def request(agent_type: str, sender: str) -> str:
    """A request for any instance of ``agent_type`` in the fleet, from ``sender``."""
    return f"{ROOT}.req.{agent_type}.{sender}"


def requests_for(agent_type: str) -> str:
    return f"{ROOT}.req.{agent_type}.*"


def inbox(device: str) -> str:
    return f"_INBOX.{device}"


def sender_of(subject: str) -> str:
    """The device a message came from: the last token of any of our subjects."""
    return subject.rsplit(".", 1)[-1]


def type_of(subject: str) -> str:
    """The agent type a request subject names."""
    return subject.split(".")[2]


def permissions(device: str) -> dict[str, Any]:
    """What the broker lets ``device`` do: publish as itself, read the fleet's heartbeats and
    requests and its own inbox, and answer a request it received (``allow_responses``)."""
    return {
        "publish": {"allow": [heartbeat(device), f"{ROOT}.req.*.{device}"]},
        "subscribe": {"allow": [HEARTBEATS, REQUESTS, f"{inbox(device)}.>"]},
        "allow_responses": True,
    }
