"""The broker's configuration for the fleet-server role (nats-server, from Debian).

nats-server reads JSON as its configuration format, so the file is made from data, not text
templates. Every device must authenticate with its enrolled key: there is no user without
one, so nothing connects unauthenticated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from appliance.fleet import subjects


def server_config(
    devices: Mapping[str, str],
    *,
    listen: str,
    name: str = "qey-fleet",
    store_dir: Path | None = None,
) -> bytes:
    """nats-server's configuration: ``devices`` maps each name to its public key."""
    host, _, port = listen.rpartition(":")
    config: dict[str, object] = {
        "server_name": name,
        "host": host.strip("[]") or "0.0.0.0",
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
    return msgspec.json.encode(config)
