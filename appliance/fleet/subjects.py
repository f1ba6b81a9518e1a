"""Subject names, and each device's permissions derived from the same names.

Every subject a device publishes on ends in (or is) its own name, and the broker lets a
device publish on its own subjects alone. A receiver therefore reads the sender from the
subject: a device cannot send a heartbeat, a request or a reply as another. Replies go to the
requester's own inbox (``_INBOX.<name>``), which no other device may read.
"""

from __future__ import annotations

import re
from typing import Any

from appliance.events import FLEET_TOPIC

ROOT = "qey"
HEARTBEATS = f"{ROOT}.dev.*"
REQUESTS = f"{ROOT}.req.*.*"
EVENTS = f"{ROOT}.evt.*.*"
TOPICS = f"{ROOT}.top.*.*"
GRAPH = f"{ROOT}.graph.*"
GRAPH_STREAM = "QEY_GRAPH"
TOKEN = re.compile(r"[A-Za-z0-9_-]+")  # what a name may be to stand as one subject token


def heartbeat(device: str) -> str:
    return f"{ROOT}.dev.{device}"


def request(agent_type: str, sender: str) -> str:
    """A request for any instance of ``agent_type`` in the fleet, from ``sender``."""
    return f"{ROOT}.req.{agent_type}.{sender}"


def requests_for(agent_type: str) -> str:
    return f"{ROOT}.req.{agent_type}.*"


def event(agent_type: str, sender: str) -> str:
    """A one-way event for any instance of ``agent_type`` in the fleet, from ``sender``."""
    return f"{ROOT}.evt.{agent_type}.{sender}"


def events_for(agent_type: str) -> str:
    return f"{ROOT}.evt.{agent_type}.*"


def topic(name: str, sender: str) -> str:
    """An event for every device's subscribers of the fleet-wide topic ``fleet.<name>``."""
    return f"{ROOT}.top.{name}.{sender}"


def topic_events(name: str) -> str:
    return f"{ROOT}.top.{name}.*"


def topic_name(topic: str) -> str | None:
    """The subject's token for a fleet-wide topic (``fleet.<name>``), None when the name
    is not one token a subject can carry (empty, or with a dot, a space or a wildcard)."""
    name = topic.removeprefix(FLEET_TOPIC)
    return name if TOKEN.fullmatch(name) else None


def place(device: str, sender: str) -> str:
    """A task ``sender`` places on ``device`` (a request: the answer says it started)."""
    return f"{ROOT}.place.{device}.{sender}"


def ended(device: str, sender: str) -> str:
    """How a task ``device`` placed on ``sender`` ended (a request: the answer acknowledges)."""
    return f"{ROOT}.ended.{device}.{sender}"


def inventory(device: str, sender: str) -> str:
    """``sender`` asks ``device`` for the devices its scans found (a request)."""
    return f"{ROOT}.inv.{device}.{sender}"


def types(device: str, sender: str) -> str:
    """``sender`` asks ``device`` for its agent types' cards (a request: typecards.py)."""
    return f"{ROOT}.types.{device}.{sender}"


def graph(device: str) -> str:
    """The coordination-graph records ``device`` shares (into the JetStream stream)."""
    return f"{ROOT}.graph.{device}"


def inbox(device: str) -> str:
    return f"_INBOX.{device}"


def sender_of(subject: str) -> str:
    """The device a message came from: the last token of any of our subjects."""
    return subject.rsplit(".", 1)[-1]


def type_of(subject: str) -> str:
    """The agent type a request's or an event's subject names (the topic's name, for a
    topic's event)."""
    return subject.split(".")[2]


def permissions(device: str) -> dict[str, Any]:
    """What the broker lets ``device`` do: publish as itself, read the fleet's heartbeats,
    requests, one-way events and fleet-wide topics, the tasks placed on it and their ends, the
    questions for its inventory and its type cards, and its own inbox, and answer a request
    it received (``allow_responses``); share graph records as itself into the stream and
    follow the stream through a consumer of its own name alone."""
    asked = ("place", "ended", "inv", "types")  # requests to one device by name
    mine = [f"{ROOT}.{what}.*.{device}" for what in ("req", "evt", "top", *asked)]
    to_me = [f"{ROOT}.{what}.{device}.*" for what in asked]
    api, stream = "$JS.API", GRAPH_STREAM
    jetstream = [  # the graph's stream: make it (the same for all), follow it as itself
        f"{api}.STREAM.CREATE.{stream}",
        f"{api}.STREAM.INFO.{stream}",
        f"{api}.CONSUMER.INFO.{stream}.{device}",
        f"{api}.CONSUMER.DURABLE.CREATE.{stream}.{device}",
        f"{api}.CONSUMER.CREATE.{stream}.{device}",
        f"{api}.CONSUMER.CREATE.{stream}.{device}.>",
        f"$JS.ACK.{stream}.{device}.>",
    ]
    return {
        "publish": {"allow": [heartbeat(device), graph(device), *mine, *jetstream]},
        "subscribe": {
            "allow": [HEARTBEATS, REQUESTS, EVENTS, TOPICS, *to_me, f"{inbox(device)}.>"]
        },
        "allow_responses": True,
    }
