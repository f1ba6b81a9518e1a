"""The host's own IPv4 addresses, so the console can say where the panel really is.

A panel bound to 0.0.0.0 is reachable at every interface's address, and "0.0.0.0" is no use
to someone reading the serial console. The standard library has no call for this; the
SIOCGIFADDR ioctl on each interface from ``socket.if_nameindex()`` asks the kernel directly,
sends nothing on any network, and needs no extra package.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

_SIOCGIFADDR = 0x8915


def local_ipv4_addresses() -> list[str]:
    """Each up interface's IPv4 address, loopback last (it is reachable only from here)."""
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            except OSError:  # no IPv4 address on this interface
                continue
            found.append(socket.inet_ntoa(reply[20:24]))
    return sorted(set(found), key=lambda a: (ipaddress.ip_address(a).is_loopback, a))


def reachable_urls(url: str) -> list[str]:
    """``url`` with a wildcard host replaced by each local address (as it is otherwise)."""
    scheme, _, rest = url.partition("://")
    host, _, tail = rest.partition(":")
    if host not in ("0.0.0.0", "[::]"):
        return [url]
    addresses = local_ipv4_addresses()
    return [f"{scheme}://{a}:{tail}" for a in addresses] or [url]
