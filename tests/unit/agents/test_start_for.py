"""Routed commands become the start events of the agent types that take them."""

from __future__ import annotations

import pytest

from appliance.agents import Analyzer, Coordinator, DataCollector, Executor
from appliance.agents.messages import AnalysisRequested, ScanRequested
from appliance.errors import BadCommand
from appliance.events import Started

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("command", "event"),
    [
        ("scan 127.0.0.1 ports 22,80", ScanRequested(target="127.0.0.1", ports=[22, 80])),
        ("scan ports 80 and 443 on 10.0.0.80", ScanRequested(target="10.0.0.80", ports=[80, 443])),
        ("discover hosts on 10.1.0.0/24", ScanRequested(target="10.1.0.0/24", ports=[])),
        (
            "port scan localhost port 8000-8002",
            ScanRequested(target="localhost", ports=[8000, 8001, 8002]),
        ),
    ],
)
def test_scan_commands_become_scan_requests(command: str, event: ScanRequested) -> None:
    assert DataCollector.start_for(command) == event


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("scan the network", "no address or network"),
        ("scan 127.0.0.1 and 127.0.0.2", "names 2 targets"),
        ("scan 300.1.1.1", "not an IP address"),
        ("scan 127.0.0.1 ports 0", "within 1-65535"),
    ],
)
def test_a_scan_command_that_cannot_be_parsed_says_why(command: str, message: str) -> None:
    with pytest.raises(BadCommand, match=message):
        DataCollector.start_for(command)


def test_analysis_commands_name_one_host_and_maybe_ports() -> None:
    assert Analyzer.start_for("analyze ports 22, 80 and 443 on 10.0.0.80") == AnalysisRequested(
        host="10.0.0.80", open_ports=[22, 80, 443]
    )
    assert Analyzer.start_for("analyze the results for localhost") == AnalysisRequested(
        host="127.0.0.1", open_ports=[]
    )
    with pytest.raises(BadCommand, match="is a network"):
        Analyzer.start_for("analyze 10.0.0.0/24")


def test_the_executor_explains_it_needs_an_analysis() -> None:
    with pytest.raises(BadCommand, match="findings that an analysis produced"):
        Executor.start_for("write a report of the findings")


def test_a_posture_command_the_coordinator_cannot_parse_is_refused_before_any_job() -> None:
    command = "analyze network security posture of 127.0.0.1"
    assert Coordinator.start_for(command) == Started(objective=command)
    with pytest.raises(BadCommand, match="posture of"):
        Coordinator.start_for("analyse netwrk posture 127.0.0.1")
