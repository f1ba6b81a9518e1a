from __future__ import annotations

import pytest

from appliance.agents.coordinator import parse_command, parse_ports
from appliance.errors import BadCommand, OutOfScope
from appliance.scope import Scope, hosts_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("command", "targets", "ports"),
    [
        ("analyze network security posture of 127.0.0.1", ["127.0.0.1"], [22, 80]),
        (
            "Analyse the security posture of 127.0.0.1, 127.0.0.2 and 127.0.1.0/30",
            ["127.0.0.1", "127.0.0.2", "127.0.1.0/30"],
            [22, 80],
        ),
        (
            "assess posture of localhost ports 8000-8002,9000",
            ["localhost"],
            [8000, 8001, 8002, 9000],
        ),
    ],
)
def test_posture_commands_name_targets_and_ports(
    command: str, targets: list[str], ports: list[int]
) -> None:
    assert parse_command(command, [22, 80]) == (targets, ports)


@pytest.mark.parametrize("command", ["", "scan everything", "analyze network security posture"])
def test_other_commands_get_a_clear_error(command: str) -> None:
    with pytest.raises(BadCommand, match="posture of"):
        parse_command(command, [22])


@pytest.mark.parametrize("ports", ["0", "70000", "90-80", "http"])
def test_bad_ports_are_refused(ports: str) -> None:
    with pytest.raises(BadCommand):
        parse_ports(ports)


def test_the_scope_refuses_anything_not_wholly_inside_it() -> None:
    scope = Scope(["127.0.0.0/24"])
    assert str(scope.check("127.0.0.9")) == "127.0.0.9/32"
    assert str(scope.check("localhost")) == "127.0.0.1/32"
    for outside in ("10.0.0.1", "127.0.0.0/16", "::1"):
        with pytest.raises(OutOfScope, match="outside the configured scope"):
            scope.check(outside)
    with pytest.raises(BadCommand):
        scope.check("not-an-address")


def test_hosts_of_a_network_and_the_size_limit() -> None:
    scope = Scope(["127.0.0.0/8"])
    assert list(hosts_of(scope.check("127.0.0.0/30"))) == ["127.0.0.1", "127.0.0.2"]
    assert list(hosts_of(scope.check("127.0.0.5"))) == ["127.0.0.5"]
    assert sum(1 for _ in hosts_of(scope.check("127.0.0.0/16"))) == 65_534  # scanned in slices
    with pytest.raises(BadCommand, match="split it"):
        list(hosts_of(scope.check("127.0.0.0/15")))
