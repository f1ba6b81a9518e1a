"""The fleet-server role: this device also runs the site's broker (nats-server, from Debian).

The role is on when config.toml has ``[fleet.server]``. What the broker listens on is held to
the board profile's ``[fleet_broker] listen``, as the panel's addresses are to ``[web]``: an
admin's config can pick among the addresses a board allows, never add one. The image's
qey-fleet-broker.service renders the configuration with this at each start, so an edited
config.toml takes effect at the next restart of that unit.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from appliance.durable import write_atomic
from appliance.fleet.config import FleetSettings, checked
from appliance.fleet.server import Cluster, server_config
from appliance.hal.board import BoardProfile

CLUSTER_SECRET_FILE = "fleet-cluster.secret"


class RoleRefused(ValueError):
    """The role's configuration is not one this device will run; the message says why."""


def broker_config(
    fleet: FleetSettings, board: BoardProfile, data_dir: Path, store_dir: Path
) -> bytes:
    """nats-server's configuration for ``fleet.server`` on ``board``, or RoleRefused. The
    broker is named after the device (``qey-NAME``): the brokers of a cluster refuse each
    other's routes under one name."""
    server = fleet.server
    if server is None:
        raise RoleRefused(
            "config.toml has no [fleet.server]: this device is not the fleet's server"
        )
    if not server.devices:
        raise RoleRefused(
            "fleet.server.devices: enrol each device's key (qey fleet key on it) as "
            'NAME = "KEY"; a broker with no device lets nobody in'
        )
    allowed = board.fleet_broker.listen
    for field, address in (("listen", server.listen), ("cluster_listen", server.cluster_listen)):
        if address and address not in allowed:
            where = ", ".join(allowed) or "nowhere"
            raise RoleRefused(
                f"fleet.server.{field}: {address} is not where the {board.name} board lets a "
                f"broker listen ({where}; [fleet_broker] in {board.source})"
            )
    cluster = None
    if server.cluster_listen:
        cluster = Cluster(
            listen=server.cluster_listen, routes=server.routes, secret=cluster_secret(data_dir)
        )
    elif server.routes:
        raise RoleRefused("fleet.server.routes: give cluster_listen too (where the routes come in)")
    return server_config(
        server.devices,
        listen=server.listen,
        name=f"qey-{checked(fleet).name}",
        store_dir=store_dir,
        cluster=cluster,
    )


def cluster_secret(data_dir: Path) -> str:
    """The brokers' shared route secret: the admin puts the same file on every broker."""
    path = data_dir / CLUSTER_SECRET_FILE
    try:
        secret = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise RoleRefused(
            f"{path}: no cluster secret; make one with `qey fleet cluster-secret` on one broker "
            "and copy the file to the same place on the others"
        ) from None
    if len(secret) < 32:
        raise RoleRefused(f"{path}: the cluster secret is shorter than 32 characters")
    return secret


def new_cluster_secret(data_dir: Path) -> str:
    """The cluster secret, made (0600) if this device has none yet."""
    path = data_dir / CLUSTER_SECRET_FILE
    if not path.exists():
        write_atomic(path, secrets.token_urlsafe(32).encode(), mode=0o600)
    return cluster_secret(data_dir)


def write_config(config: bytes, out: Path) -> None:
    """Write the configuration readable by the broker's group alone (it holds the route
    secret): the file takes the group of the directory it is in, the broker's."""
    write_atomic(out, config, mode=0o640)
    os.chown(out, -1, out.parent.stat().st_gid)
