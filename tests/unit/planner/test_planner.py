"""plan(command): the shape, the parameters and each step's type, before anything runs."""

from __future__ import annotations

import time

import pytest

from appliance.errors import BadCommand, NoConfidentMatch, OutOfScope
from appliance.events import Started
from appliance.planner.plan import (
    AnyFinding,
    FindingAtLeast,
    PortOpen,
    decode_plan,
    encode_plan,
    render_plan,
)
from appliance.planner.planner import Planner
from appliance.router import Router
from appliance.runtime import Agent, Context, NoState
from appliance.schedules.cadence import Every
from tests.unit.planner.conftest import NOW

pytestmark = pytest.mark.unit


async def test_a_sequence_waits_for_the_step_before(planner: Planner) -> None:
    plan = await planner.plan("scan 127.0.0.1 ports 22 then analyze the results")
    first, second = plan.steps
    assert (first.agent_type, first.params.targets, first.params.ports) == (
        "data_collector",
        ["127.0.0.1"],
        [22],
    )
    assert second.agent_type == "analyzer" and second.after == [first.id]
    assert not plan.direct and plan.unused == []


async def test_several_targets_become_parallel_steps_when_a_type_takes_one(
    planner: Planner,
) -> None:
    plan = await planner.plan("scan 127.0.0.1 and 127.0.0.2 in parallel")
    assert [s.params.targets for s in plan.steps] == [["127.0.0.1"], ["127.0.0.2"]]
    assert all(s.after == [] and s.agent_type == "data_collector" for s in plan.steps)


async def test_the_posture_command_stays_one_direct_step(planner: Planner) -> None:
    plan = await planner.plan("analyze network security posture of 127.0.0.1, 127.0.0.2 ports 22")
    [step] = plan.steps
    assert plan.direct and step.agent_type == "coordinator"
    assert step.params.targets == ["127.0.0.1", "127.0.0.2"] and step.params.ports == [22]


async def test_a_condition_naming_a_target_probes_it_first(planner: Planner) -> None:
    plan = await planner.plan("if port 23 is open on 127.0.0.1, record it")
    probe, action = plan.steps
    assert probe.params.targets == ["127.0.0.1"] and probe.params.ports == [23]
    assert action.after == [probe.id] and action.agent_type == "executor"
    assert action.when == PortOpen(ports=[23], host="127.0.0.1")


async def test_conditions_on_the_step_before(planner: Planner) -> None:
    critical = await planner.plan("scan 127.0.0.1, and if anything critical is found, record it")
    assert critical.steps[1].when == FindingAtLeast(severity="critical")
    unless = await planner.plan("scan 127.0.0.1 then record the findings unless nothing is found")
    assert unless.steps[1].when == AnyFinding(negate=False)
    telnet = await planner.plan("scan 127.0.0.1 and if telnet is open, record it")
    assert telnet.steps[1].when == PortOpen(ports=[23])


async def test_only_critical_ones_is_a_severity_filter(planner: Planner) -> None:
    plan = await planner.plan("scan 127.0.0.1 ports 22,23 and record only critical ones")
    assert plan.steps[1].params.severity == "critical"
    assert plan.steps[1].after == [plan.steps[0].id]


async def test_a_schedule_is_cut_out_of_what_runs(planner: Planner) -> None:
    plan = await planner.plan("scan 127.0.0.1 every hour")
    assert plan.schedule == Every(count=1, unit="hour") and plan.scheduled
    assert plan.runs == "scan 127.0.0.1" and plan.steps[0].text == "scan 127.0.0.1"
    assert not plan.direct


async def test_references_to_earlier_work_carry_their_time_window(planner: Planner) -> None:
    plan = await planner.plan("analyze the scan results from this morning")
    [step] = plan.steps
    window = step.params.window
    assert window is not None and window.phrase == "this morning"
    assert (window.start, window.end) == (
        NOW.replace(hour=0).timestamp(),
        NOW.replace(hour=12).timestamp(),
    )
    assert step.agent_type == "analyzer" and not plan.direct
    latest = await planner.plan("analyze the results of the last scan")
    assert latest.steps[0].params.latest


async def test_a_target_outside_the_scope_refuses_the_plan(planner: Planner) -> None:
    with pytest.raises(OutOfScope, match=r"10\.1\.2\.3"):
        await planner.plan("scan 127.0.0.1 then scan 10.1.2.3")


async def test_a_bad_port_is_refused_naming_it(planner: Planner) -> None:
    with pytest.raises(BadCommand, match="70000"):
        await planner.plan("scan 127.0.0.1 ports 70000 then analyze the results")


async def test_what_nobody_can_do_is_refused_naming_what_was_understood(
    planner: Planner,
) -> None:
    with pytest.raises(NoConfidentMatch) as caught:
        await planner.plan("scan 127.0.0.1 then make me a sandwich")
    assert "Understood: 'scan 127.0.0.1' (data_collector)" in str(caught.value)
    assert "Not understood: 'make me a sandwich'" in str(caught.value)
    assert caught.value.candidates
    with pytest.raises(NoConfidentMatch, match="closest: "):
        await planner.plan("make me a sandwich")


async def test_unused_words_are_reported(planner: Planner) -> None:
    plan = await planner.plan("scan 127.0.0.1 22 then analyze the results")
    assert plan.unused == ["22"] and plan.uncertain


async def test_a_plan_encodes_renders_and_decodes(planner: Planner) -> None:
    plan = await planner.plan("scan 127.0.0.1 ports 23 and if port 23 is open, record it")
    assert decode_plan(encode_plan(plan)) == plan
    text = render_plan(plan)
    assert "s1 data_collector" in text and "└── s2" in text and "if port 23 is open" in text


class CertChecker(Agent):
    name = "cert_checker"
    description = "Checks TLS certificates: when a certificate expires, who issued it."
    capabilities = ("check when an ssl certificate expires", "tls certificate expiry")
    examples = ("when does the ssl cert of 10.0.0.1 expire", "is the https certificate valid")

    async def on_start(self, event: Started, ctx: Context[NoState]) -> str:
        return event.objective


async def test_a_type_registered_at_run_time_appears_in_plans(
    router: Router, types: dict[str, type[Agent]], planner: Planner
) -> None:
    router.add_type(CertChecker)
    types[CertChecker.name] = CertChecker
    plan = await planner.plan("when does the ssl cert of 127.0.0.1 expire")
    assert [s.agent_type for s in plan.steps] == ["cert_checker"] and plan.direct
    chained = await planner.plan(
        "scan 127.0.0.1 ports 443 then check when the tls certificate of 127.0.0.1 expires"
    )
    assert [s.agent_type for s in chained.steps] == ["data_collector", "cert_checker"]


async def test_planning_without_the_router_is_fast(planner: Planner) -> None:
    command = "first scan 127.0.0.1 ports 22-25, then if telnet is open record only critical ones"
    times = []
    for _ in range(200):  # CPU time of this thread: the goal is per thread, and the host is shared
        start = time.thread_time()
        planner.parse(command)
        times.append(time.thread_time() - start)
    times.sort()
    assert times[int(len(times) * 0.99)] < 0.020


async def test_recipients_are_parameters_not_targets(planner: Planner) -> None:
    plan = await planner.plan("scan 127.0.0.1 then email the findings to ops@example.com")
    assert plan.steps[0].params.targets == ["127.0.0.1"]
    assert plan.steps[1].params.recipients == ["ops@example.com"]
    told = await planner.plan("scan 127.0.0.1 and if anything critical is found, alert me")
    assert told.steps[1].params.recipients == ["me"]
    assert told.steps[1].when == FindingAtLeast(severity="critical")


async def test_a_question_the_router_reads_as_a_condition_is_not_given_to_the_planner_type(
    planner: Planner,
) -> None:
    """A clause the router sends to the coordinator for its shape alone ("tell me if ...")
    is placed by its words, or refused: never a step the coordinator cannot parse."""
    plan = await planner.plan("scan 127.0.0.1 and tell me if telnet is open")
    assert plan.steps[1].when == PortOpen(ports=[23])
    assert plan.steps[1].params.recipients == ["me"]
    assert all(s.agent_type != "coordinator" for s in plan.steps)


async def test_a_reference_is_routed_by_what_it_asks_not_by_its_time_words(
    planner: Planner,
) -> None:
    plan = await planner.plan("analyze yesterday's results")
    [step] = plan.steps
    assert step.agent_type == "analyzer" and step.params.window is not None
    assert step.params.window.phrase == "yesterday"


async def test_a_refusal_names_the_closest_things_the_appliance_can_do(
    planner: Planner,
) -> None:
    with pytest.raises(NoConfidentMatch) as caught:
        await planner.plan("scan 127.0.0.1 then make me a sandwich")
    message = str(caught.value)
    assert "The closest things it can do: " in message
    assert "data_collector: Collects data about hosts and networks" in message
