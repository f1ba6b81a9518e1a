"""The actions' firewall, loaded by the real nft into a network namespace this test makes:
a blocked host's connections to the appliance die, a quarantined host is cut off both ways,
an allow-listed one gets through, and loading the empty table (an undo) lets all in again.
The egress policy's table, loaded beside it, is left as it was."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.support import new_network_namespace

pytestmark = pytest.mark.integration

# Inside the namespace (its root): load the tables the argument names, one after another,
# and after each try every connection; prints what got through.
SCENARIO = textwrap.dedent(
    """
    import json, socket, subprocess, sys
    from appliance.actions.firewall import Entries, load
    from appliance.egress import ruleset as egress_ruleset
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["nft", "-f", "-"], input=egress_ruleset(["127.0.0.0/8"], [], 4242),
                   text=True, check=True)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    to_four = socket.create_server(("127.0.0.4", 0))
    def tries():
        out = {}
        for name, source, target in [
            ("from .3", "127.0.0.3", ("127.0.0.1", port)),
            ("from .9", "127.0.0.9", ("127.0.0.1", port)),
            ("from .4", "127.0.0.4", ("127.0.0.1", port)),
            ("to .4", "127.0.0.1", to_four.getsockname()),
        ]:
            try:
                socket.create_connection(target, timeout=0.5, source_address=(source, 0)).close()
                out[name] = "through"
            except OSError:
                out[name] = "cut"
        return out
    results = []
    for table in json.loads(sys.argv[1]):
        load(Entries(**{k: tuple(v) for k, v in table.items()}))
        results.append(tries())
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    print(json.dumps({"results": results, "tables": listed.split()}))
    """
)


def test_block_quarantine_allow_and_undo_on_a_real_firewall() -> None:
    tables = [
        {"blocked": ["127.0.0.3", "127.0.0.9"], "allowed": ["127.0.0.9"]},
        {"quarantined": ["127.0.0.4"]},
        {},  # everything undone
    ]
    run = subprocess.run(
        [*new_network_namespace(), sys.executable, "-c", SCENARIO, json.dumps(tables)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    blocked, quarantined, undone = out["results"]
    assert blocked == {
        "from .3": "cut",
        "from .9": "through",
        "from .4": "through",
        "to .4": "through",
    }
    assert quarantined == {
        "from .3": "through",
        "from .9": "through",
        "from .4": "cut",
        "to .4": "cut",
    }
    assert set(undone.values()) == {"through"}
    assert "qey_egress" in out["tables"] and "qey_actions" in out["tables"]
