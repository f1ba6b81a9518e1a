"""Fleet: request/reply and one-way events across devices over a real nats-server on
loopback, against the same inside one device, and against bare NATS request/reply (what the
broker alone costs).

The serving device is a process of its own (a runtime with the bench's counter type and its
fleet link); the asking device is this process, whose runtime takes ``request`` and ``send``
to ``TypeRef("counter")`` as an agent's ``ctx`` would: it does not run that type (its own
counter is an internal type of another name), so every call crosses to the other process
through the counter's queue group.
Requests: sequential calls (p50 / p99), then a window of concurrent calls (calls/s). Events:
``EVENTS`` one-way sends, timed until the receiving instance has handled the last.

Goal (issue 16's): cross-device p99 <= 2 ms on loopback.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

from _common import (
    JOB,
    Counter,
    Ping,
    bench_runtime,
    figure,
    goal,
    header,
    median,
    percentile,
    ratio,
)

from appliance.events import TypeRef
from appliance.fleet.config import FleetSettings
from appliance.fleet.keys import device_seed, public_key
from appliance.fleet.link import FleetLink
from appliance.fleet.server import server_config
from appliance.runtime import Runtime

WARMUP = 500
N = 3_000
REPS = 3
WINDOW = 128
BURST = 10_000
EVENTS = 50_000
NATS_SERVER = "/usr/sbin/nats-server"

Call = Callable[[Ping], Awaitable[object]]


class LocalCounter(Counter):
    """The asking device's own counter: internal, so its link never serves it to the fleet."""

    name = "local_counter"
    internal = True


def link(runtime: Runtime, url: str, name: str, seed: bytes) -> FleetLink:
    return FleetLink(
        FleetSettings(servers=[url], name=name, heartbeat_s=5),
        seed,
        runtime,
        version="bench",
        scope=lambda: [],
        health=lambda: "ok",
        load=lambda: 0,
    )


async def serve(url: str, data_dir: str) -> None:
    """The serving device (a child process): the counter type, served to the fleet."""
    async with bench_runtime(Counter) as runtime:
        fleet = link(runtime, url, "server", device_seed(Path(data_dir)))
        await fleet.start()
        await fleet.wait_connected(10)
        print("serving", flush=True)
        await asyncio.Event().wait()


async def sequential(call: Call) -> list[float]:
    for i in range(WARMUP):
        await call(Ping(n=i))
    clock = time.perf_counter_ns
    out: list[float] = []
    for i in range(N):
        start = clock()
        await call(Ping(n=i))
        out.append((clock() - start) / 1000)
    return out


async def windowed(call: Call) -> float:
    """Calls per second with ``WINDOW`` calls in flight at once."""
    slots = asyncio.Semaphore(WINDOW)

    async def one(i: int) -> None:
        async with slots:
            await call(Ping(n=i))

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(BURST)))
    return BURST / (time.perf_counter() - start)


async def one_way(send: Callable[[Ping], Awaitable[None]], count: Call) -> float:
    """Events per second: ``EVENTS`` sends, until the instance has handled the last (the
    count a request reads back has grown by ``EVENTS`` and by the asking requests)."""
    before = cast(int, await count(Ping(n=-1)))
    start = time.perf_counter()
    for i in range(EVENTS):
        await send(Ping(n=i))
    asked = 0
    while True:
        asked += 1
        if cast(int, await count(Ping(n=-1))) >= before + EVENTS + asked:
            return EVENTS / (time.perf_counter() - start)
        await asyncio.sleep(0.001)


def main() -> None:
    """The broker and the serving device as processes, then the asking side in this one."""
    header(
        f"fleet: {N:,} sequential requests, then {BURST:,} with {WINDOW} in flight, then "
        f"{EVENTS:,} one-way events"
    )
    with tempfile.TemporaryDirectory(prefix="qey-bench-fleet-") as tmp:
        root = Path(tmp)
        for name in ("server", "client", "raw"):
            (root / name).mkdir()
        seeds = {name: device_seed(root / name) for name in ("server", "client", "raw")}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        conf = root / "nats.conf"
        keys = {name: public_key(seed) for name, seed in seeds.items()}
        conf.write_bytes(server_config(keys, listen=f"127.0.0.1:{port}", store_dir=root / "js"))
        url = f"nats://127.0.0.1:{port}"
        broker = subprocess.Popen([NATS_SERVER, "-c", str(conf)], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", url, str(root / "server")],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "serving"
            asyncio.run(run(url, seeds))
        finally:
            child.terminate()
            child.wait(10)
            broker.terminate()
            broker.wait(10)


async def run(url: str, seeds: dict[str, bytes]) -> None:
    import nats as nats_client

    from appliance.fleet import subjects

    # bare NATS: a responder in the serving process would need its own code; here one in
    # this process answers at once, so the line is the broker's round trip alone
    raw = await nats_client.connect(
        [url], nkeys_seed_str=seeds["raw"].decode(), inbox_prefix=subjects.inbox("raw")
    )

    async def answer(msg: object) -> None:
        await msg.respond(b"\x01")  # type: ignore[attr-defined]

    await raw.subscribe(subjects.requests_for("rawecho"), queue="rawecho", cb=answer)
    await raw.flush()
    async with bench_runtime(LocalCounter) as runtime:
        fleet = link(runtime, url, "client", seeds["client"])
        await fleet.start()
        await fleet.wait_connected(10)
        for _ in range(200):  # until the serving device is heard: its type is known
            if any("counter" in p.heartbeat.types for p in fleet.peers_up()):
                break
            await asyncio.sleep(0.05)
        ref = runtime.spawn("local_counter", JOB, "bench instance")

        async def local(event: Ping) -> object:
            return await runtime.request(ref, event, job=JOB)

        # what an agent's ctx.request does: this device does not run "counter", so the
        # runtime asks the fleet (a device that does)
        async def remote(event: Ping) -> object:
            return await runtime.request(TypeRef("counter"), event, job=JOB)

        async def bare(event: Ping) -> object:
            return await fleet._nc.request(  # type: ignore[union-attr]
                subjects.request("rawecho", "client"), b"\x00", timeout=5
            )

        async def send_local(event: Ping) -> None:
            await runtime.send(ref, event, job=JOB)

        async def send_remote(event: Ping) -> None:
            await runtime.send(TypeRef("counter"), event, job=JOB)

        lines: dict[str, list[list[float]]] = {"local": [], "remote": [], "bare": []}
        rates: dict[str, list[float]] = {"local": [], "remote": [], "bare": []}
        events: dict[str, list[float]] = {"local": [], "remote": []}
        calls = {"local": local, "remote": remote, "bare": bare}
        sends = {"local": (send_local, local), "remote": (send_remote, remote)}
        for _ in range(REPS):
            for name, call in calls.items():
                lines[name].append(await sequential(call))
                rates[name].append(await windowed(call))
            for name, (send, count) in sends.items():
                events[name].append(await one_way(send, count))
        await fleet.close()
    await raw.close()

    def p(name: str, q: float) -> float:
        return median([percentile(s, q) for s in lines[name]])

    for name, label in (
        ("local", "in one device (runtime.request)"),
        ("bare", "bare NATS request/reply (reference)"),
        ("remote", "across devices (runtime.request, a type only the other runs)"),
    ):
        figure(f"{label} p50", p(name, 50), "µs")
        figure(f"{label} p99", p(name, 99), "µs")
        figure(f"{label}, {WINDOW} in flight", median(rates[name]), "calls/s")
    figure("one-way events in one device (runtime.send)", median(events["local"]), "events/s")
    figure("one-way events across devices (runtime.send)", median(events["remote"]), "events/s")
    ratio("across / in one device, p99", p("remote", 99), p("local", 99), higher_is_better=False)
    ratio(
        "across / in one device, events/s",
        median(events["remote"]),
        median(events["local"]),
        higher_is_better=True,
    )
    ratio("across / bare NATS, p99", p("remote", 99), p("bare", 99), higher_is_better=False)
    goal("cross-device p99", p("remote", 99) / 1000, 2.0, "ms")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(serve(sys.argv[2], sys.argv[3]))
    else:
        main()
