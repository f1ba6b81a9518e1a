"""The broker's configuration for the fleet-server role (nats-server, from Debian).

nats-server reads JSON as its configuration format, so the file is made from data, not text
templates. Every device must authenticate with its enrolled key: there is no user without
one, so nothing connects unauthenticated. Several brokers form one cluster over routes that
authenticate too, with a secret the admin gives every node (a route without it is refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from appliance.fleet import subjects

ROUTE_USER = "qey-route"


class Cluster(msgspec.Struct, frozen=True, kw_only=True):
    """This broker's place in a cluster: where it listens for the others, and where they are."""

    listen: str  # HOST:PORT for the other brokers' routes
    routes: list[str]  # the other brokers' HOST:PORTs
    secret: str  # the same on every node


def server_config(
    devices: Mapping[str, str],
    *,
    listen: str,
    name: str = "qey-fleet",
    store_dir: Path | None = None,
    cluster: Cluster | None = None,
) -> bytes:
    """nats-server's configuration: ``devices`` maps each name to its public key."""
    host, _, port = _split(listen)
    config: dict[str, object] = {
        "server_name": name,
        "host": host,
        "port": int(port),
        "authorization": {
            "users": [
                {"nkey": key, "permissions": subjects.permissions(device)}
                for device, key in sorted(devices.items())
            ]
        },
        # a slow or dead device must not hold the broker's memory hostage
        "max_payload": 1024 * 1024,
        "write_deadline": "5s",
    }
    if store_dir is not None:
        config["jetstream"] = {"store_dir": str(store_dir)}
    if cluster is not None:
        chost, _, cport = _split(cluster.listen)
        config["cluster"] = {
            "name": "qey",
            "host": chost,
            "port": int(cport),
            "authorization": {"user": ROUTE_USER, "password": cluster.secret},
            "routes": [f"nats-route://{ROUTE_USER}:{cluster.secret}@{r}" for r in cluster.routes],
        }
    return msgspec.json.encode(config)


def _split(address: str) -> tuple[str, str, str]:
    host, colon, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", colon, port
