"""The host's own addresses, so the console can say where the panel really is.

A panel bound to 0.0.0.0 (or [::]) is reachable at every interface's address, and a wildcard
is no use to someone reading the serial console. psutil lists each interface's addresses
from the kernel (IPv6 too); nothing is sent on any network.
"""

from __future__ import annotations

import ipaddress
import socket

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def local_addresses(family: socket.AddressFamily = socket.AF_INET) -> list[str]:
    """Each interface's addresses of ``family``, loopback last (reachable only from here);
    IPv6 link-local ones are left out (they need an interface name to be of use)."""
    import psutil  # here: 60 ms of imports, wanted only when the panel listens on a wildcard

    found: set[Address] = set()
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family != family:
                continue
            ip = ipaddress.ip_address(a.address.split("%", 1)[0])
            if not ip.is_link_local:
                found.add(ip)
    return [str(ip) for ip in sorted(found, key=lambda ip: (ip.is_loopback, int(ip)))]


def reachable_urls(url: str) -> list[str]:
    """``url`` with a wildcard host replaced by each local address of its family (as it is
    otherwise)."""
    scheme, _, rest = url.partition("://")
    host, _, tail = rest.rpartition(":")
    if host == "0.0.0.0":
        addresses = local_addresses(socket.AF_INET)
    elif host == "[::]":
        addresses = [f"[{a}]" for a in local_addresses(socket.AF_INET6)]
    else:
        return [url]
    return [f"{scheme}://{a}:{tail}" for a in addresses] or [url]


def link_states() -> str:
    """Each interface but loopback as the console says it when no lease has come: its name,
    whether its link is up, and its IPv4 addresses."""
    import psutil

    addresses = psutil.net_if_addrs()
    said = []
    for name, stats in sorted(psutil.net_if_stats().items()):
        if name == "lo":
            continue
        ipv4 = [a.address for a in addresses.get(name, ()) if a.family == socket.AF_INET]
        state = "up" if stats.isup else "down"
        said.append(f"{name} {state}, {', '.join(ipv4) or 'no IPv4 address'}")
    return "; ".join(said) or "no interface but loopback"
