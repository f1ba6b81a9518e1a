"""The image's fleet-server role: a device whose config.toml has [fleet.server] runs the
site's broker (Debian's nats-server, from qey-fleet-broker.service) and joins the fleet through
it, and the host reaches that broker through QEMU's forwarded port as another device would.

The data partition is set up as an admin leaves it: config.toml with [fleet] (this device,
its broker on itself) and [fleet.server] (the enrolled keys: this device's and the host's),
and the device's own key in its data directory (made on the host here, so it can be enrolled
before the first boot). An unenrolled key and a client with no key at all are refused.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from appliance.fleet import subjects, wire
from appliance.fleet.keys import KEY_FILE, device_seed, public_key
from appliance.fleet.status import FleetStatus
from tests.qemu.conftest import READY_DEADLINE_S, Guest, build_image
from tests.qemu.disk import Disk, overlay
from tests.qemu.test_boot import login

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

TARGET = "qemu-amd64"
BROKER_DEADLINE_S = 120  # the broker's unit starts once the appliance is ready


def test_a_device_with_the_server_role_runs_the_broker_and_joins_through_it(
    tmp_path: Path,
) -> None:
    for name in ("qey0", "host", "stranger"):
        (tmp_path / name).mkdir()
    seeds = {name: device_seed(tmp_path / name) for name in ("qey0", "host", "stranger")}
    config = tmp_path / "config.toml"
    config.write_text(
        '[fleet]\nname = "qey0"\nservers = ["nats://127.0.0.1:4222"]\nheartbeat_s = 1.0\n\n'
        '[fleet.server]\nlisten = "0.0.0.0:4222"\n\n[fleet.server.devices]\n'
        f'qey0 = "{public_key(seeds["qey0"])}"\nhost = "{public_key(seeds["host"])}"\n'
    )
    disk = Disk(build_image(TARGET), tmp_path / "disk.img")
    disk.put_file("data", config, "qey/config.toml")
    disk.put_private_file("data", tmp_path / "qey0" / KEY_FILE, f"qey/{KEY_FILE}", "qey")
    state = tmp_path / "state"
    overlay(TARGET, disk.path, state)
    guest = Guest(TARGET, state)
    guest.start()
    try:
        guest.wait_for(r"qey ready", READY_DEADLINE_S)
        url = f"nats://127.0.0.1:{guest.broker_port}"
        beat = asyncio.run(heartbeat_of_qey0(url, seeds["host"]))
        refusals = asyncio.run(refused(url, seeds["stranger"]))
        s = login(guest)
        status = msgspec.json.decode(
            s.get(f"{guest.base_url}/api/v1/fleet", timeout=30).content, type=FleetStatus
        )
    finally:
        guest.stop()
    assert beat.scope == ["127.0.0.1/32"] and beat.health in ("ok", "degraded"), beat
    assert "data_collector" in beat.types
    assert refusals == {"stranger": True, "no key": True}
    assert status.connected and status.server == "127.0.0.1:4222", status
    assert status.key == public_key(seeds["qey0"])
    assert [d.name for d in status.devices] == ["qey0"] and status.devices[0].state == "up"


async def heartbeat_of_qey0(url: str, seed: bytes) -> wire.Heartbeat:
    """The guest's own heartbeat, read by the host's enrolled key through the guest's broker
    (which comes up after the appliance: tried until it answers)."""
    import nats

    deadline = time.monotonic() + BROKER_DEADLINE_S
    while True:
        try:
            nc = await nats.connect(
                url, nkeys_seed_str=seed.decode(), connect_timeout=5, allow_reconnect=False
            )
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(2)
    try:
        sub = await nc.subscribe(subjects.heartbeat("qey0"))
        msg = await sub.next_msg(timeout=30)
        return wire.heartbeat_decoder.decode(msg.data)
    finally:
        await nc.close()


async def refused(url: str, stranger: bytes) -> dict[str, bool]:
    """Whether the broker turns away a key it has not enrolled, and a client with none."""
    import nats
    from nats.errors import Error as NatsError

    found = {}
    for who, options in (
        ("stranger", {"nkeys_seed_str": stranger.decode()}),
        ("no key", {}),
    ):
        try:
            nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False, **options)  # type: ignore[arg-type]
        except (NatsError, OSError) as err:
            found[who] = "authorization" in str(err).lower() or "auth" in repr(err).lower()
            continue
        await nc.close()
        found[who] = False
    return found
