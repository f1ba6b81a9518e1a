"""The image's egress policy, loaded by the real nft into a network namespace this test makes:
the policed user reaches the scope and what the admin allowed, and nothing else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from appliance.egress import networks, ruleset
from tests.support import new_network_namespace

pytestmark = pytest.mark.integration

NFT = shutil.which("nft") or "/usr/sbin/nft"

# run inside the namespace as its root (uid 0 there): one listener per address, then a
# connect to each; prints which connects succeeded
PROBE = textwrap.dedent(
    """
    import errno, json, socket, sys
    results = {}
    for address in sys.argv[1:]:
        server = socket.create_server((address, 0))
        try:
            socket.create_connection(server.getsockname(), timeout=2).close()
            results[address] = "connected"
        except OSError as err:
            results[address] = errno.errorcode.get(err.errno or 0, repr(err))
        server.close()
    print(json.dumps(results))
    """
)


def in_namespace(rules: str, *addresses: str) -> dict[str, str]:
    """Load the rules in a fresh user+network namespace and probe from inside it."""
    script = f"ip link set lo up && {NFT} -f - && exec {sys.executable} -c '{PROBE}' " + " ".join(
        addresses
    )
    run = subprocess.run(
        [*new_network_namespace(), "sh", "-c", script],
        input=rules,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, str] = json.loads(run.stdout)
    return result


def test_overlapping_ranges_collapse_for_nft() -> None:
    assert [str(n) for n in networks(["127.0.0.1/32", "127.0.0.0/8", "::1", "127.0.0.9"])] == [
        "127.0.0.0/8",
        "::1/128",
    ]


@pytest.mark.skipif(not Path(NFT).exists(), reason="needs nft (./build.sh test installs it)")
def test_the_policed_user_reaches_only_scope_and_allowed_addresses() -> None:
    rules = ruleset(["127.0.0.1/32"], ["127.0.0.3"], user=0)
    assert in_namespace(rules, "127.0.0.1", "127.0.0.2", "127.0.0.3") == {
        "127.0.0.1": "connected",  # in scope
        "127.0.0.2": "EHOSTUNREACH",  # neither: refused at once, not a timeout
        "127.0.0.3": "connected",  # egress_allow
    }


@pytest.mark.skipif(not Path(NFT).exists(), reason="needs nft (./build.sh test installs it)")
def test_other_users_are_not_policed_and_a_reload_replaces_the_table() -> None:
    other = ruleset(["127.0.0.1/32"], [], user=4242)
    twice = other + ruleset(["127.0.0.2/32"], [], user=0)  # the second load wins whole
    assert in_namespace(other, "127.0.0.2") == {"127.0.0.2": "connected"}
    assert in_namespace(twice, "127.0.0.1", "127.0.0.2") == {
        "127.0.0.1": "EHOSTUNREACH",
        "127.0.0.2": "connected",
    }


def test_a_bad_egress_allow_entry_fails_at_start_naming_the_field(tmp_path: Path) -> None:
    from appliance.settings import Settings

    (tmp_path / "config.toml").write_text('egress_allow = ["192.0.2.10", "mail.example"]\n')
    with pytest.raises(ValueError, match=r"config.toml: egress_allow: .*mail\.example"):
        Settings.load({"QEY_DATA_DIR": str(tmp_path)})


def egress_policy(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``qey egress-policy`` on that data directory, which must succeed."""
    run = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "egress-policy"],
        env={"QEY_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run


def test_qey_egress_policy_prints_the_scope_and_allow_list_from_config(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'scope = ["127.0.0.0/30"]\negress_allow = ["192.0.2.10"]\n'
    )
    run = egress_policy(tmp_path)
    assert run.stdout.splitlines()[0] == (
        "# qey egress policy: scope 127.0.0.0/30; allowed 192.0.2.10/32"
    )
    assert 'meta skuid != "qey" accept' in run.stdout


def test_the_fleets_brokers_named_by_address_are_allowed(tmp_path: Path) -> None:
    """Configuring [fleet] asks for the broker: its address is let through; a broker named by
    host name is not looked up (it needs its address in egress_allow)."""
    (tmp_path / "config.toml").write_text(
        'scope = ["127.0.0.0/30"]\negress_allow = ["192.0.2.10"]\n\n[fleet]\n'
        'servers = ["nats://192.0.2.5:4222", "tls://[2001:db8::5]:4222", "nats://broker.lan:4222"]\n'
        'name = "office"\n'
    )
    run = egress_policy(tmp_path)
    assert run.stdout.splitlines()[0] == (
        "# qey egress policy: scope 127.0.0.0/30; "
        "allowed 192.0.2.5/32, 192.0.2.10/32, 2001:db8::5/128"
    )
    assert "broker.lan" not in run.stdout
