"""The scan scope: the only addresses the appliance's agents may ever touch."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from appliance.errors import BadCommand, OutOfScope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOSTS_PER_TARGET = 4096


class Scope:
    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(parse_network(n) for n in networks)
        if not self.networks:
            raise ValueError("a scope needs at least one network")

    def __str__(self) -> str:
        return ", ".join(str(n) for n in self.networks)

    def check(self, target: str) -> Network:
        """The target as a network, or OutOfScope unless all of it lies inside the scope."""
        net = parse_network(target)
        if not any(net.version == s.version and net.subnet_of(s) for s in self.networks):  # type: ignore[arg-type]
            raise OutOfScope(f"{target} is outside the configured scope ({self})")
        return net


def parse_network(text: str) -> Network:
    text = text.strip()
    if text.lower() == "localhost":
        text = "127.0.0.1"
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as err:
        raise BadCommand(f"{text!r} is not an IP address or network: {err}") from None


def hosts_of(net: Network) -> Iterator[str]:
    """Every address a scan of ``net`` probes (a single address is its own host)."""
    if net.num_addresses > MAX_HOSTS_PER_TARGET:
        raise BadCommand(
            f"{net} has {net.num_addresses} addresses; split it into targets of at most "
            f"{MAX_HOSTS_PER_TARGET}"
        )
    if net.num_addresses == 1:
        yield str(net.network_address)
        return
    yield from (str(h) for h in net.hosts())
