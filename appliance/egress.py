"""The appliance's egress policy: the only addresses its user may reach, as an nftables ruleset.

Switching each library's telemetry off (``appliance/offline.py``) handles the clients we know
of; this handles the ones we don't. On the image, ``qey-egress.service`` (root) loads this
ruleset as the appliance starts (in place before it is ready) and again whenever
``config.toml`` changes: packets that the appliance's user sends go out only to the scan
scope, to what the admin allowed
(``egress_allow``: a webhook, a mail relay, a resolver), or as replies on connections others
opened (the panel). Everything else is refused at once (a clear error to the caller, not a
timeout) and logged, rate-limited, in the kernel log. The appliance itself holds no network
admin capability, so it cannot lift the policy; the admin changes it by changing the scope.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

TABLE = "qey_egress"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(entries: Iterable[str]) -> list[Network]:
    """Addresses and ranges, parsed (host bits ignored) and collapsed: nftables refuses
    overlapping intervals in one set."""
    parsed = [ipaddress.ip_network(e.strip(), strict=False) for e in entries]
    v4 = [n for n in parsed if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in parsed if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


def _set(name: str, family: str, members: Sequence[Network]) -> str:
    kind = "ipv4_addr" if family == "4" else "ipv6_addr"
    chosen = [str(n) for n in members if str(n.version) == family]
    elements = f" elements = {{ {', '.join(chosen)} }};" if chosen else ""
    return f"  set {name}_v{family} {{ type {kind}; flags interval;{elements} }}"


def ruleset(scope: Iterable[str], allow: Iterable[str], user: str | int) -> str:
    """The whole table, replaced atomically by one ``nft -f`` (the first two lines make sure
    there is a table to delete, so the first load and a reload are the same transaction)."""
    scope_nets, allow_nets = networks(scope), networks(allow)
    who = f'"{user}"' if isinstance(user, str) else str(user)
    described = ", ".join(map(str, allow_nets)) or "nothing else"
    lines = [
        f"# qey egress policy: scope {', '.join(map(str, scope_nets)) or 'empty'}; "
        f"allowed {described}",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        _set("scope", "4", scope_nets),
        _set("scope", "6", scope_nets),
        _set("allow", "4", allow_nets),
        _set("allow", "6", allow_nets),
        "  chain output {",
        "    type filter hook output priority filter; policy accept;",
        f"    meta skuid != {who} accept",
        "    ct state established,related accept",
        "    ip daddr @scope_v4 accept",
        "    ip6 daddr @scope_v6 accept",
        "    ip daddr @allow_v4 accept",
        "    ip6 daddr @allow_v6 accept",
        '    limit rate 6/minute log prefix "qey-egress refused: " level warn',
        "    reject with icmpx admin-prohibited",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"
