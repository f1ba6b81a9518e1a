"""The panel's addresses said as they come and go: the interfaces are the edge, stood in for
by a listing the test changes (as a DHCP lease or a pulled cable would)."""

from __future__ import annotations

import asyncio

from appliance.hal.addresses import PanelAddresses

WILDCARD = "https://0.0.0.0:443/"


class Interfaces:
    """What the kernel would list for the wildcard, changed by the test."""

    def __init__(self, *hosts: str) -> None:
        self.hosts = list(hosts)

    def reachable(self, url: str) -> list[str]:
        assert url == WILDCARD
        return [f"https://{h}:443/" for h in self.hosts] or [url]


def test_an_address_that_comes_later_is_said_then_and_one_that_goes_is_said_gone() -> None:
    said: list[str] = []
    nics = Interfaces("127.0.0.1")  # ready before the network: loopback alone
    addresses = PanelAddresses([WILDCARD], said.append, reachable=nics.reachable)
    assert addresses.refresh()
    assert said == ["qey panel https://127.0.0.1:443/"]
    assert addresses.from_elsewhere is None

    assert not addresses.refresh()  # nothing changed: nothing said
    assert len(said) == 1

    nics.hosts = ["10.0.2.15", "127.0.0.1"]  # the lease
    assert addresses.refresh()
    assert said[1:] == ["qey panel https://10.0.2.15:443/"]
    assert addresses.from_elsewhere == "https://10.0.2.15:443/"

    nics.hosts = ["192.168.1.20", "127.0.0.1"]  # moved to another network
    assert addresses.refresh()
    assert said[2:] == [
        "qey panel https://192.168.1.20:443/",
        "qey panel gone https://10.0.2.15:443/",
    ]
    assert addresses.current == ["https://192.168.1.20:443/", "https://127.0.0.1:443/"]


def test_the_address_to_show_at_the_device_is_one_reachable_from_elsewhere() -> None:
    nics = Interfaces("127.0.0.1", "[::1]", "[2001:db8::5]")
    addresses = PanelAddresses([WILDCARD], lambda _: None, reachable=nics.reachable)
    assert addresses.from_elsewhere is None  # not looked at yet
    addresses.refresh()
    assert addresses.from_elsewhere == "https://[2001:db8::5]:443/"


async def test_the_watch_calls_back_on_each_change_only() -> None:
    nics = Interfaces("127.0.0.1")
    changes: list[list[str]] = []
    changed = asyncio.Event()

    def on_change() -> None:
        changes.append(list(addresses.current))
        changed.set()

    addresses = PanelAddresses([WILDCARD], lambda _: None, reachable=nics.reachable)
    addresses.refresh()
    watching = asyncio.create_task(addresses.watch(on_change, every_s=0.01))
    try:
        await asyncio.sleep(0.05)  # five looks at unchanged addresses
        assert changes == []
        nics.hosts = ["10.0.2.15", "127.0.0.1"]
        async with asyncio.timeout(5):
            await changed.wait()
        assert changes == [["https://10.0.2.15:443/", "https://127.0.0.1:443/"]]
    finally:
        watching.cancel()


async def watched(addresses: PanelAddresses, looks: int) -> None:
    """Let ``watch`` look ``looks`` times, 10 ms apart, with ``alone_s`` of 30 ms."""
    watching = asyncio.create_task(addresses.watch(every_s=0.01, alone_s=0.03))
    try:
        await asyncio.sleep(0.01 * looks + 0.005)
    finally:
        watching.cancel()


async def test_a_panel_reachable_from_the_device_alone_says_once_what_its_interfaces_are() -> None:
    said: list[str] = []
    explained = asyncio.Event()

    def say(line: str) -> None:
        said.append(line)
        if "alone" in line:
            explained.set()

    nics = Interfaces("127.0.0.1")  # the lease never comes
    addresses = PanelAddresses(
        [WILDCARD], say, reachable=nics.reachable, links=lambda: "eth0 up, no IPv4"
    )
    watching = asyncio.create_task(addresses.watch(every_s=0.01, alone_s=0.03))
    try:
        async with asyncio.timeout(5):
            await explained.wait()
        await asyncio.sleep(0.1)  # ten more looks: said once only
    finally:
        watching.cancel()
    assert [s for s in said if "alone" in s] == [
        "qey network: the panel is reachable from this device alone so far: eth0 up, no IPv4"
    ]


async def test_nothing_is_explained_once_a_lease_came_or_for_a_panel_on_loopback() -> None:
    said: list[str] = []
    nics = Interfaces("10.0.2.15", "127.0.0.1")
    with_lease = PanelAddresses([WILDCARD], said.append, reachable=nics.reachable)
    on_loopback = PanelAddresses(["https://127.0.0.1:8080/"], said.append)
    await watched(with_lease, 10)
    await watched(on_loopback, 10)
    assert not [s for s in said if "alone" in s]
    assert "qey panel https://10.0.2.15:443/" in said  # both looked, and said what they saw
    assert "qey panel https://127.0.0.1:8080/" in said
