"""The fleet-server role as the image's qey-fleet-broker.service runs it: ``qey fleet
server-config`` renders nats-server's configuration from config.toml, held to where the board
profile lets a broker listen, and real nats-server processes run what it wrote. Two brokers
rendered with the same cluster secret carry one device's messages to another's; a broker with
another secret is refused as a route."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from appliance.fleet import subjects
from appliance.fleet.keys import public_key
from tests.integration.broker import board_allowing, free_port, nats_server, seeds

pytestmark = pytest.mark.integration


def qey(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "fleet", *args],
        env={**os.environ, "QEY_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def broker_dir(root: Path, name: str, server_table: str, *, allow: list[str]) -> Path:
    data_dir = root / name
    data_dir.mkdir(parents=True)
    board = board_allowing(data_dir / "board.toml", *allow)
    (data_dir / "config.toml").write_text(f'board = "{board}"\n\n{server_table}')
    return data_dir


def devices_table(keys: dict[str, str]) -> str:
    return "[fleet.server.devices]\n" + "".join(f'{n} = "{k}"\n' for n, k in keys.items())


@pytest.fixture
def keys(tmp_path: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    made = seeds(tmp_path / "devices", "alpha", "beta")
    return made, {name: public_key(seed) for name, seed in made.items()}


def test_the_role_is_off_without_a_server_table_and_on_with_one(
    tmp_path: Path, keys: tuple[dict[str, bytes], dict[str, str]]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.toml").write_text('scope = ["127.0.0.1/32"]\n')
    off = qey(plain, "server-config", "--if-role")
    assert off.returncode == 1 and "role is off" in off.stdout
    refused = qey(plain, "server-config")
    assert refused.returncode == 1 and "not the fleet's server" in refused.stderr

    table = '[fleet.server]\nlisten = "127.0.0.1:4222"\n' + devices_table(keys[1])
    server = broker_dir(tmp_path, "server", table, allow=["127.0.0.1:4222"])
    on = qey(server, "server-config", "--if-role")
    assert on.returncode == 0 and "role is on" in on.stdout


def test_a_broker_listens_only_where_the_board_allows(
    tmp_path: Path, keys: tuple[dict[str, bytes], dict[str, str]]
) -> None:
    table = '[fleet.server]\nlisten = "0.0.0.0:4222"\n' + devices_table(keys[1])
    server = broker_dir(tmp_path, "server", table, allow=["127.0.0.1:4222"])
    refused = qey(server, "server-config")
    assert refused.returncode == 1
    assert "fleet.server.listen: 0.0.0.0:4222 is not where the sim board" in refused.stderr
    assert "127.0.0.1:4222" in refused.stderr and not refused.stdout

    nowhere = broker_dir(tmp_path, "nowhere", table, allow=[])
    refused = qey(nowhere, "server-config")
    assert refused.returncode == 1 and "(nowhere;" in refused.stderr


def test_a_broker_with_no_device_enrolled_is_refused(tmp_path: Path) -> None:
    server = broker_dir(
        tmp_path, "server", '[fleet.server]\nlisten = "127.0.0.1:4222"\n', allow=["127.0.0.1:4222"]
    )
    refused = qey(server, "server-config")
    assert refused.returncode == 1 and "a broker with no device lets nobody in" in refused.stderr


def test_a_cluster_needs_its_listen_address_and_the_shared_secret(
    tmp_path: Path, keys: tuple[dict[str, bytes], dict[str, str]]
) -> None:
    routes_only = '[fleet.server]\nroutes = ["127.0.0.1:6223"]\n' + devices_table(keys[1])
    server = broker_dir(tmp_path, "a", routes_only, allow=["0.0.0.0:4222"])
    refused = qey(server, "server-config")
    assert refused.returncode == 1 and "give cluster_listen too" in refused.stderr

    table = (
        '[fleet.server]\nlisten = "127.0.0.1:4222"\ncluster_listen = "127.0.0.1:6222"\n'
        + devices_table(keys[1])
    )
    server = broker_dir(tmp_path, "b", table, allow=["127.0.0.1:4222", "127.0.0.1:6222"])
    refused = qey(server, "server-config")
    assert refused.returncode == 1 and "qey fleet cluster-secret" in refused.stderr

    made = qey(server, "cluster-secret")
    assert made.returncode == 0 and len(made.stdout.strip()) >= 32
    assert qey(server, "cluster-secret").stdout == made.stdout  # made once, then kept
    assert (server / "fleet-cluster.secret").stat().st_mode & 0o777 == 0o600
    assert qey(server, "server-config").returncode == 0


def test_the_written_configuration_is_for_the_brokers_group_alone(
    tmp_path: Path, keys: tuple[dict[str, bytes], dict[str, str]]
) -> None:
    table = '[fleet.server]\nlisten = "127.0.0.1:4222"\n' + devices_table(keys[1])
    server = broker_dir(tmp_path, "server", table, allow=["127.0.0.1:4222"])
    out = tmp_path / "run" / "nats.json"
    out.parent.mkdir()
    done = qey(server, "server-config", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o640
    assert out.stat().st_gid == out.parent.stat().st_gid
    assert str(server / "fleet-broker") in out.read_text()  # JetStream by default


@contextmanager
def rendered_broker(data_dir: Path, port: int) -> Iterator[str]:
    out = data_dir / "nats.json"
    done = qey(data_dir, "server-config", "--out", str(out))
    assert done.returncode == 0, done.stderr
    with nats_server(data_dir, out.read_bytes(), port) as (url, _):
        yield url


def test_two_rendered_brokers_with_one_secret_are_one_fleet_and_another_secret_is_refused(
    tmp_path: Path, keys: tuple[dict[str, bytes], dict[str, str]]
) -> None:
    seed, public = keys
    ports = {name: (free_port(), free_port()) for name in ("one", "two", "rogue")}
    dirs = {}
    for name, (port, route_port) in ports.items():
        others = [f"127.0.0.1:{r}" for n, (_, r) in ports.items() if n != name]
        table = (
            f'[fleet]\nname = "{name}"\n\n[fleet.server]\nlisten = "127.0.0.1:{port}"\n'
            f'cluster_listen = "127.0.0.1:{route_port}"\nroutes = {others!r}\n'.replace("'", '"')
            + devices_table(public)
        )
        dirs[name] = broker_dir(
            tmp_path, name, table, allow=[f"127.0.0.1:{port}", f"127.0.0.1:{route_port}"]
        )
    assert qey(dirs["one"], "cluster-secret").returncode == 0
    (dirs["two"] / "fleet-cluster.secret").write_bytes(
        (dirs["one"] / "fleet-cluster.secret").read_bytes()
    )
    assert qey(dirs["rogue"], "cluster-secret").returncode == 0  # its own: not the fleet's

    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(rendered_broker(dirs[name], port))
            for name, (port, _) in ports.items()
        }
        heard = asyncio.run(
            heartbeat_heard(seed, from_url=urls["two"], at=[urls["one"], urls["rogue"]])
        )
    assert heard == {urls["one"]: True, urls["rogue"]: False}


async def heartbeat_heard(
    seed: dict[str, bytes], *, from_url: str, at: list[str]
) -> dict[str, bool]:
    """Whether alpha, listening at each of ``at``, hears beta's heartbeat sent at
    ``from_url`` (beta sends until alpha at the first of ``at`` hears it, or 20 s)."""
    import nats

    listeners = {}
    heard = {url: asyncio.Event() for url in at}
    for url in at:
        nc = await nats.connect(url, nkeys_seed_str=seed["alpha"].decode())

        async def got(msg: object, url: str = url) -> None:
            heard[url].set()

        await nc.subscribe(subjects.heartbeat("beta"), cb=got)
        await nc.flush()
        listeners[url] = nc
    sender = await nats.connect(from_url, nkeys_seed_str=seed["beta"].decode())
    deadline = time.monotonic() + 20
    while not heard[at[0]].is_set() and time.monotonic() < deadline:
        await sender.publish(subjects.heartbeat("beta"), b"{}")
        await asyncio.sleep(0.2)
    for _ in range(5):  # a little longer, for a route that should never carry it
        await sender.publish(subjects.heartbeat("beta"), b"{}")
        await asyncio.sleep(0.2)
    await sender.close()
    for nc in listeners.values():
        await nc.close()
    return {url: event.is_set() for url, event in heard.items()}
