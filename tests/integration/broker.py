"""A real nats-server on loopback for the fleet tests, with enrolled device keys."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from appliance.fleet.keys import device_seed, public_key
from appliance.fleet.server import Cluster, server_config
from appliance.hal.board import BOARDS_DIR

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def board_allowing(path: Path, *listen: str) -> Path:
    """The sim board's profile, its broker allowed to listen on ``listen`` alone."""
    sim = (BOARDS_DIR / "sim.toml").read_text()
    kept = sim[: sim.index("[fleet_broker]")]
    path.write_text(kept + f"[fleet_broker]\nlisten = {list(listen)!r}\n".replace("'", '"'))
    return path


def seeds(root: Path, *names: str) -> dict[str, bytes]:
    """A data directory with its own key for each device name, as a first start makes."""
    made = {}
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        made[name] = device_seed(root / name)
    return made


@contextmanager
def broker(
    workdir: Path, enrolled: Mapping[str, bytes], *, port: int | None = None
) -> Iterator[str]:
    """nats-server with ``enrolled`` devices' public keys; yields its nats:// URL."""
    port = port or free_port()
    keys = {name: public_key(seed) for name, seed in enrolled.items()}
    config = server_config(keys, listen=f"127.0.0.1:{port}", store_dir=workdir / f"js-{port}")
    with nats_server(workdir, config, port) as (url, _):
        yield url


@contextmanager
def nats_server(
    workdir: Path, config: bytes, port: int
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """nats-server with ``config`` (listening on 127.0.0.1:``port``): its URL and process."""
    if not Path(NATS_SERVER).exists():
        pytest.fail("nats-server is missing: ./build.sh test installs it (apt: nats-server)")
    path = workdir / f"nats-{port}.conf"
    path.write_bytes(config)
    log_path = workdir / f"nats-{port}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([NATS_SERVER, "-c", str(path)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nats-server did not start: {log_path.read_text()}"
                    ) from None
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        log.close()


@contextmanager
def cluster(workdir: Path, enrolled: Mapping[str, bytes], nodes: int = 3) -> Iterator[list[Node]]:
    """``nodes`` nats-servers routed into one cluster, each taking the enrolled keys."""
    ports = [free_port() for _ in range(nodes)]
    routes = [free_port() for _ in range(nodes)]
    keys = {name: public_key(seed) for name, seed in enrolled.items()}
    with ExitStack() as stack:
        found = []
        for i, port in enumerate(ports):
            config = server_config(
                keys,
                listen=f"127.0.0.1:{port}",
                name=f"node-{i}",
                cluster=Cluster(
                    listen=f"127.0.0.1:{routes[i]}",
                    routes=[f"127.0.0.1:{r}" for r in routes if r != routes[i]],
                    secret="test-route-secret",
                ),
            )
            found.append(stack.enter_context(node(workdir, config, port)))
        yield found


class Node:
    """One running nats-server: its URL, and a way to kill it."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.proc = proc

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@contextmanager
def node(workdir: Path, config: bytes, port: int) -> Iterator[Node]:
    with nats_server(workdir, config, port) as (url, proc):
        yield Node(url, proc)
