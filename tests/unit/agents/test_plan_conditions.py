"""A step's condition, evaluated on the typed results of the steps it waited for."""

from __future__ import annotations

import pytest

from appliance.agents.messages import Facts, Finding, HostPorts
from appliance.agents.plans import holds
from appliance.planner.plan import AnyFinding, FindingAtLeast, PortOpen

pytestmark = pytest.mark.unit

TELNET = Finding(
    host="127.0.0.1", port=23, service="telnet", severity="critical", title="t", advice="a"
)
FOUND = Facts(open=[HostPorts(host="127.0.0.1", open_ports=[22, 23])], findings=[TELNET])
NOTHING = Facts(open=[HostPorts(host="127.0.0.1", open_ports=[])])


@pytest.mark.parametrize(
    ("when", "facts", "expected"),
    [
        (PortOpen(ports=[23]), FOUND, True),
        (PortOpen(ports=[23], host="127.0.0.1"), FOUND, True),
        (PortOpen(ports=[23], host="127.0.0.2"), FOUND, False),
        (PortOpen(ports=[23], host="localhost"), FOUND, True),
        (PortOpen(ports=[80]), FOUND, False),
        (PortOpen(ports=[80], negate=True), FOUND, True),  # "if port 80 is closed"
        (FindingAtLeast(severity="high"), FOUND, True),
        (FindingAtLeast(severity="critical", negate=True), FOUND, False),
        (FindingAtLeast(severity="low"), NOTHING, False),
        (AnyFinding(), FOUND, True),
        (AnyFinding(), NOTHING, False),
        (AnyFinding(negate=True), NOTHING, True),  # "if nothing is found"
    ],
)
def test_conditions_hold_on_what_was_found(
    when: PortOpen | FindingAtLeast | AnyFinding, facts: Facts, expected: bool
) -> None:
    assert holds(when, facts) is expected
