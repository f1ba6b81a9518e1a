"""The scan scope: the only addresses the appliance's agents may ever touch.

What may be in it is checked once, wherever it comes from (the panel, config.toml,
``$QEY_SCOPE``): every entry must be hosts an agent can probe, and a range past
``MAX_IPV4_ADDRESSES`` / a ``/MAX_IPV6_PREFIX`` is taken only when confirmed, so ``/0`` or a
stray ``/8`` is never the scope by a slip of the keyboard.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator

from appliance.errors import BadCommand, OutOfScope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOSTS_PER_TARGET = 65_536
"""A /16: the most one scan target takes (the collectors' pool scans it in slices)."""
MAX_IPV4_ADDRESSES = 65_536
"""A /16: the largest IPv4 range taken without ``confirm_large``."""
MAX_IPV6_PREFIX = 64
"""One link (a /64): an IPv6 range wider than that spans many networks, so it is confirmed."""
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
"""This machine: however large, it reaches no one else, so it never needs confirming."""


def _with_mapped(net: str, why: str) -> list[tuple[Network, str]]:
    """The IPv4 range and its IPv4-mapped IPv6 form (``::ffff:a.b.c.d``), which a dual-stack
    socket sends to the same IPv4 address."""
    v4 = ipaddress.IPv4Network(net)
    mapped = ipaddress.IPv6Network(f"::ffff:{v4.network_address}/{96 + v4.prefixlen}")
    return [(v4, why), (mapped, why)]


NOT_HOSTS: tuple[tuple[Network, str], ...] = (
    (
        ipaddress.IPv6Network("::/128"),
        "the unspecified address (::): a probe to it reaches the appliance itself",
    ),
    *_with_mapped(
        "0.0.0.0/8",
        "'this host' addresses (0.0.0.0/8): a probe to 0.0.0.0 reaches the appliance itself",
    ),
    *_with_mapped("224.0.0.0/4", "multicast (224.0.0.0/4): a group address, not a host"),
    (ipaddress.IPv6Network("ff00::/8"), "IPv6 multicast (ff00::/8): a group address, not a host"),
    *_with_mapped(
        "255.255.255.255/32",
        "the limited broadcast address (255.255.255.255): every host on the link",
    ),
)
"""Ranges no scope entry may touch, and why: none of them is a host an agent can scan."""

HOW_TO_CONFIRM = (
    'confirm it: "confirm_large": true in the API, the "allow large ranges" box on the '
    "settings page, or scope_confirm_large = true (or $QEY_SCOPE_CONFIRM_LARGE=1) at start"
)


class Scope:
    def __init__(self, networks: Iterable[str], *, confirm_large: bool = False) -> None:
        self.networks: tuple[Network, ...] = scope_networks(networks, confirm_large=confirm_large)
        # in a fleet: whether another device's scope covers a network (None: no fleet)
        self.elsewhere: Callable[[Network], bool] | None = None

    def __str__(self) -> str:
        return ", ".join(str(n) for n in self.networks)

    @property
    def has_large(self) -> bool:
        """Whether an entry is past the size limit (its confirmation must then be kept)."""
        return any(is_large(n) for n in self.networks)

    def check(self, target: str) -> Network:
        """The target as a network, or OutOfScope unless all of it lies inside the scope."""
        net = parse_network(target)
        if not any(net.version == s.version and net.subnet_of(s) for s in self.networks):  # type: ignore[arg-type]
            raise OutOfScope(f"{target} is outside the configured scope ({self})")
        return net

    def check_reachable(self, target: str) -> Network:
        """``check``, or in a fleet, the target inside another device's scope: what may be
        asked of the fleet (the work then runs on a device whose own ``check`` passes)."""
        try:
            return self.check(target)
        except OutOfScope:
            net = parse_network(target)
            if self.elsewhere is not None and self.elsewhere(net):
                return net
            if self.elsewhere is not None:
                raise OutOfScope(
                    f"{target} is outside this device's scope ({self}) and no device of the "
                    "fleet heard now covers it"
                ) from None
            raise


def scope_networks(entries: Iterable[str], *, confirm_large: bool = False) -> tuple[Network, ...]:
    """The entries as networks, checked, in the order given; an entry equal to or inside an
    earlier or later one is dropped (it adds no address). BadCommand names the first bad
    entry and why."""
    checked: list[Network] = []
    for entry in entries:
        net = parse_network(entry)
        for bad, why in NOT_HOSTS:
            if net.version == bad.version and net.overlaps(bad):
                raise BadCommand(f"scope entry {entry.strip()!r} includes {why}")
        if is_large(net) and not confirm_large:
            limit = (
                f"{MAX_IPV4_ADDRESSES:,} (a /16)"
                if net.version == 4
                else f"one /{MAX_IPV6_PREFIX} link"
            )
            raise BadCommand(
                f"scope entry {entry.strip()!r} spans {net.num_addresses:,} addresses, more "
                f"than {limit}; to scan a range that large, {HOW_TO_CONFIRM}"
            )
        checked.append(net)
    if not checked:
        raise BadCommand("a scope needs at least one network")
    kept: list[Network] = []
    for i, net in enumerate(checked):
        inside_other = any(
            net.version == other.version
            and net.subnet_of(other)  # type: ignore[arg-type]
            and (net != other or j < i)  # of equal ones, the first stays
            for j, other in enumerate(checked)
            if j != i
        )
        if not inside_other:
            kept.append(net)
    return tuple(kept)


def is_large(net: Network) -> bool:
    if any(net.version == lo.version and net.subnet_of(lo) for lo in LOOPBACK):  # type: ignore[arg-type]
        return False
    if net.version == 4:
        return net.num_addresses > MAX_IPV4_ADDRESSES
    return net.prefixlen < MAX_IPV6_PREFIX


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
