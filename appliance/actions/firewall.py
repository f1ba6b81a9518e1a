"""The appliance's own firewall for actions: one nftables table, ``inet qey_actions``, made
whole from the applied actions each time (see ``entries``), so applying is idempotent: a
restart, a retry or a second block of the same host loads the same table. It is apart from
the egress policy's table (``egress.py``), which it never touches.

Allow-listed hosts are accepted before anything is dropped, so an exemption always wins."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable, Sequence

import msgspec

from appliance.actions.model import AllowList, AnyAction, Block, Quarantine, Revoke
from appliance.errors import ActionFailed

TABLE = "qey_actions"


class Entries(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who the firewall cuts off or exempts, each list sorted and without duplicates."""

    blocked: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()


def entries(applied: Iterable[AnyAction]) -> Entries:
    """The firewall that the applied actions, in the order they were applied, add up to."""
    blocked: set[str] = set()
    quarantined: set[str] = set()
    allowed: set[str] = set()
    for action in applied:
        if isinstance(action, Block):
            blocked.add(action.address)
        elif isinstance(action, Quarantine):
            quarantined.add(action.address)
        elif isinstance(action, AllowList):
            allowed.add(action.address)
        elif isinstance(action, Revoke):
            allowed.discard(action.address)
    return Entries(
        blocked=tuple(sorted(blocked, key=_order)),
        quarantined=tuple(sorted(quarantined, key=_order)),
        allowed=tuple(sorted(allowed, key=_order)),
    )


def _order(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def _set(name: str, version: int, members: Sequence[str]) -> str:
    kind = "ipv4_addr" if version == 4 else "ipv6_addr"
    chosen = [m for m in members if ipaddress.ip_address(m).version == version]
    listed = f" elements = {{ {', '.join(chosen)} }};" if chosen else ""
    return f"  set {name}_v{version} {{ type {kind};{listed} }}"


def ruleset(current: Entries) -> str:
    """The whole table, replaced in one ``nft -f`` transaction (the first two lines make
    sure there is a table to delete, so the first load and every later one are the same)."""
    sets = [
        _set(name, version, members)
        for name, members in (
            ("blocked", current.blocked),
            ("quarantined", current.quarantined),
            ("allowed", current.allowed),
        )
        for version in (4, 6)
    ]
    exempt = ["    ip saddr @allowed_v4 accept", "    ip6 saddr @allowed_v6 accept"]
    cut_from = [
        "    ip saddr @blocked_v4 drop",
        "    ip6 saddr @blocked_v6 drop",
        "    ip saddr @quarantined_v4 drop",
        "    ip6 saddr @quarantined_v6 drop",
    ]
    cut_to = ["    ip daddr @quarantined_v4 drop", "    ip6 daddr @quarantined_v6 drop"]
    lines = [
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        *sets,
        "  chain input {",
        "    type filter hook input priority filter - 5; policy accept;",
        *exempt,
        *cut_from,
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter - 5; policy accept;",
        *exempt,
        *cut_from,
        "    ip daddr @allowed_v4 accept",
        "    ip6 daddr @allowed_v6 accept",
        *cut_to,
        "  }",
        "  chain output {",
        "    type filter hook output priority filter - 5; policy accept;",
        "    ip daddr @allowed_v4 accept",
        "    ip6 daddr @allowed_v6 accept",
        *cut_to,
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def load(current: Entries, nft: str | None = None) -> None:
    """Load the table; ActionFailed says why not (no nft, no CAP_NET_ADMIN, a bad rule)."""
    if nft is None:
        import shutil  # here, not at the top: a start does not need it (bz2, lzma)

        nft = shutil.which("nft") or "/usr/sbin/nft"
    try:
        run = subprocess.run(
            [nft, "-f", "-"],
            input=ruleset(current),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ActionFailed(f"the firewall could not be changed: {err}") from None
    if run.returncode != 0:
        detail = " ".join(run.stderr.split())[:300]
        if "Operation not permitted" in run.stderr:
            detail = f"this process may not change the firewall (CAP_NET_ADMIN): {detail}"
        raise ActionFailed(f"the firewall could not be changed: {detail}")
