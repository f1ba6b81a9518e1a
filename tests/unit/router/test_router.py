"""The router with the real int8 model: routing, refusal, plans, new types, providers."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from pathlib import Path

import msgspec
import pytest

from appliance.agents import BUILTIN_TYPES
from appliance.errors import ModelUnavailable, ProviderUnavailable
from appliance.events import Event
from appliance.router import Plugin, RouteDecision, Router, RouterSettings
from appliance.router.encoder import file_sha256, packaged_model_dir
from appliance.router.head import TypeHead
from appliance.router.router import phrases_of
from appliance.runtime import Agent, Context, NoState, Runtime

pytestmark = pytest.mark.unit

MODEL_DIR = packaged_model_dir()


def test_the_shipped_model_is_the_recorded_build() -> None:
    sums = dict(
        reversed(line.split())
        for line in (MODEL_DIR / "SHA256SUMS").read_text().splitlines()
        if line.strip()
    )
    assert set(sums) == {"router.onnx", "tokenizer.json"}
    for name, digest in sums.items():
        assert file_sha256(MODEL_DIR / name) == digest, name


@pytest.mark.parametrize(
    ("command", "agent_type"),
    [
        ("scan 127.0.0.1 ports 22,80", "data_collector"),
        ("analyze network security posture of 127.0.0.1", "coordinator"),
        ("how dangerous is an open telnet port on 127.0.0.1", "analyzer"),
        ("record the finding about port 23 in the report", "executor"),
    ],
)
def test_a_clear_command_goes_to_its_agent_type(
    router: Router, command: str, agent_type: str
) -> None:
    decision = router.route_blocking(command)
    assert decision.agent_type == agent_type, decision
    assert decision.confidence >= router.settings.threshold
    assert agent_type not in [c.agent_type for c in decision.alternatives]


@pytest.mark.parametrize(
    ("command", "agent_type"),
    [
        # actions other than a report entry are the executor's
        ("open a ticket for the telnet finding on the printer", "executor"),
        ("let the owner know about every critical finding", "executor"),
        ("put 10.0.0.5 on the allow list", "executor"),
        # questions and reviews about earlier results are the analyzer's
        ("which of last night's findings need attention", "analyzer"),
        ("explain why telnet is rated high", "analyzer"),
        # nicknames, no address, a slip of the keyboard
        ("whats open on the thermostat", "data_collector"),
        # (a slip no tune command makes: "scna" is one, kept as it was typed, so it is a
        # word the router knows, not a slip it mends)
        ("scsn the printer", "data_collector"),
    ],
)
def test_unseen_phrasing_goes_to_its_agent_type(
    router: Router, command: str, agent_type: str
) -> None:
    decision = router.route_blocking(command)
    assert decision.agent_type == agent_type, decision


@pytest.mark.parametrize(
    "command",
    [
        "scan this document",
        "check my emails",
        "block my calendar for friday",
        "back up my photos to the nas",
    ],
)
def test_near_the_domain_but_not_its_job_is_refused(router: Router, command: str) -> None:
    """Hard negatives share a word with the appliance's work; the gate refuses them."""
    decision = router.route_blocking(command)
    assert (decision.agent_type, decision.reason) == (None, "no confident match"), decision
    assert 0.0 <= decision.confidence < router.settings.threshold


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("scan the network then write a report", "multi-step"),
        # ordered steps make a plan even when one type would take each of them
        ("first find the live machines in 127.0.0.0/29, then probe each for ports", "multi-step"),
        ("scan 127.0.0.1 every night at 2am", "scheduled"),
        ("if port 23 is open on 127.0.0.1, record it in the report", "conditional"),
    ],
)
def test_plans_go_to_the_coordinator(router: Router, command: str, reason: str) -> None:
    decision = router.route_blocking(command)
    assert (decision.agent_type, decision.reason) == ("coordinator", reason)


def test_a_list_in_one_step_is_not_a_plan(router: Router) -> None:
    """Without an order ("then", "first"), clauses for one type are one step of it."""
    decision = router.route_blocking("discover hosts and open ports on 127.0.0.0/29")
    assert (decision.agent_type, decision.reason) == ("data_collector", "nearest")


@pytest.mark.parametrize(
    "command",
    [
        "make me a sandwich",
        "what is the weather tomorrow",
        "asdf qwerty",
        "walk the dog then feed the cat",
    ],
)
def test_nonsense_gets_no_confident_match_with_candidates(router: Router, command: str) -> None:
    decision = router.route_blocking(command)
    assert decision.agent_type is None
    assert decision.reason == "no confident match"
    assert decision.confidence < router.settings.threshold
    assert len(decision.alternatives) == 3
    assert [c.confidence for c in decision.alternatives] == sorted(
        (c.confidence for c in decision.alternatives), reverse=True
    )


def test_the_decision_encodes_as_the_json_the_cli_prints(router: Router) -> None:
    decision = router.route_blocking("scan 127.0.0.1")
    data = msgspec.json.decode(msgspec.json.encode(decision))
    assert set(data) >= {"command", "agent_type", "confidence", "alternatives", "provider"}
    assert data["provider"] == "CPUExecutionProvider"
    assert msgspec.json.decode(msgspec.json.encode(decision), type=RouteDecision) == decision


def test_routing_many_at_once_decides_as_one_by_one(router: Router) -> None:
    commands = ["scan 127.0.0.1", "make me a sandwich", "scan the network then write a report"]
    assert router.route_many(commands) == [router.route_blocking(c) for c in commands]


async def test_route_runs_off_the_event_loop_and_agrees(router: Router) -> None:
    assert await router.route("scan 127.0.0.1") == router.route_blocking("scan 127.0.0.1")


class WeatherReport(Event, frozen=True, tag="test.weather"):
    city: str = ""


class Weather(Agent):
    name = "weather"
    description = "Tells the weather forecast: rain, sun, temperature and wind for a city."
    capabilities = ("weather forecast", "will it rain tomorrow")
    State = NoState

    async def on_weather(self, event: WeatherReport, ctx: Context[NoState]) -> str:
        return "sunny"


async def test_a_type_registered_at_run_time_becomes_routable(runtime: Runtime) -> None:
    router = Router()
    runtime.on_agent_type(router.add_type)  # the test types the runtime fixture registered
    before = await router.route("what is the weather tomorrow in Paris")
    assert before.agent_type is None
    runtime.register(Weather)
    after = await router.route("what is the weather tomorrow in Paris")
    assert after.agent_type == "weather"
    assert "weather" in router.agent_types


class CertificateChecked(Event, frozen=True, tag="test.certificate"):
    address: str = ""


class Certificates(Agent):
    name = "certificates"
    description = "Checks the TLS certificates of a host: issuer, expiry date, weak keys."
    capabilities = ("when does a certificate expire", "check an ssl certificate")
    State = NoState

    async def on_certificate(self, event: CertificateChecked, ctx: Context[NoState]) -> str:
        return "valid"


def test_a_type_registered_later_beside_the_built_in_ones_takes_its_questions() -> None:
    """Four phrases beside the built-in types' hundreds and the gate's out-of-domain class;
    and a question opening with "when" is no condition, so no plan for the coordinator."""
    router = Router()
    for cls in [*BUILTIN_TYPES, Certificates]:
        router.add_type(cls)
    decision = router.route_blocking("when does the ssl cert of 127.0.0.1 expire")
    assert (decision.agent_type, decision.reason) == ("certificates", "nearest"), decision
    assert router.route_blocking("scan 127.0.0.1").agent_type == "data_collector"


def test_a_type_known_by_its_phrases_alone_is_routed_to_until_removed() -> None:
    """What another device of the fleet runs comes as phrases (its type card): routable
    beside this device's own types, and gone again when no device runs it."""
    router = Router()
    for cls in BUILTIN_TYPES:
        router.add_type(cls)
    router.add_phrases("certificates", phrases_of(Certificates))
    assert "certificates" in router.agent_types
    asked = "when does the ssl cert of 127.0.0.1 expire"
    assert router.route_blocking(asked).agent_type == "certificates"
    router.remove_type("certificates")
    assert "certificates" not in router.agent_types
    decision = router.route_blocking(asked)
    assert decision.agent_type != "certificates"
    assert all(c.agent_type != "certificates" for c in decision.alternatives)
    assert router.route_blocking("scan 127.0.0.1").agent_type == "data_collector"
    router.remove_type("never_added")  # no change, no error
    router.add_phrases("certificates", ["check an ssl certificate"])
    router.remove_type("certificates")  # asked in one go: the last word stands
    assert "certificates" not in router.agent_types
    assert router.route_blocking("scan 127.0.0.1").agent_type == "data_collector"


def test_nothing_registered_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no agent types are registered"):
        Router().route_blocking("scan 127.0.0.1")


def test_a_board_wanting_an_npu_without_a_plugin_runs_on_cpu_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = Router(RouterSettings(devices=["NPU", "GPU"]))
    router.add_type(BUILTIN_TYPES[1])
    assert router.provider == "CPUExecutionProvider"
    assert router.route_blocking("scan 127.0.0.1").provider == "CPUExecutionProvider"
    assert (router.placement.device, router.placement.wanted) == ("CPU", ["NPU", "GPU"])
    assert router.placement.fallback == "the board names no plugin execution provider"
    assert (
        "router: runs on CPUExecutionProvider on CPU" in caplog.text
        and "a fallback: the board names no plugin execution provider" in caplog.text
    )


@pytest.mark.parametrize(
    ("library", "reason"),
    [
        ("missing.so", r"no provider library at .*missing\.so"),
        ("garbage.so", r"cannot load the provider library .*garbage\.so: .*invalid ELF header"),
    ],
)
def test_a_missing_or_broken_plugin_library_falls_back_to_cpu_saying_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, library: str, reason: str
) -> None:
    (tmp_path / "garbage.so").write_bytes(b"not a shared library\n" * 64)
    plugin = Plugin(path=str(tmp_path / library))
    router = Router(RouterSettings(plugin=plugin, devices=["NPU"]))
    assert router.placement.provider == "CPUExecutionProvider"
    assert re.fullmatch(reason, router.placement.fallback), router.placement.fallback
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(re.search(reason, m) and "CPUExecutionProvider" in m for m in warned), warned


@pytest.mark.parametrize("library", ["missing.so", "garbage.so"])
def test_a_strict_board_refuses_to_start_without_its_plugin_library(
    tmp_path: Path, library: str
) -> None:
    (tmp_path / "garbage.so").write_bytes(b"not a shared library\n" * 64)
    plugin = Plugin(path=str(tmp_path / library))
    with pytest.raises(ProviderUnavailable, match=rf"^strict mode: .*{library}"):
        Router(RouterSettings(plugin=plugin, devices=["NPU"], strict=True))


def test_a_plugin_package_that_is_not_installed_is_a_fallback_that_names_it() -> None:
    router = Router(RouterSettings(plugin=Plugin(package="no_such_ep_package"), devices=["NPU"]))
    assert router.placement.fallback.startswith("no Python package no_such_ep_package")


def test_strict_mode_refuses_to_start_without_a_wanted_device() -> None:
    with pytest.raises(
        ProviderUnavailable,
        match="strict mode: the router needs a device of type NPU and there is none",
    ):
        Router(RouterSettings(devices=["NPU"], strict=True))


def test_strict_mode_runs_when_the_wanted_device_is_there() -> None:
    router = Router(RouterSettings(devices=["CPU"], strict=True))
    assert router.provider == "CPUExecutionProvider"
    assert router.placement.fallback == ""
    assert router.placement.nodes_on_provider == router.placement.nodes > 0


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    for name in ("router.onnx", "tokenizer.json", "SHA256SUMS"):
        shutil.copy(MODEL_DIR / name, tmp_path / name)
    return tmp_path


def test_a_corrupt_model_is_refused_at_start(model_copy: Path) -> None:
    with (model_copy / "router.onnx").open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    with pytest.raises(ModelUnavailable, match=r"router\.onnx is corrupt or not the one recorded"):
        Router(RouterSettings(model_dir=model_copy))


def test_a_corrupt_model_fails_clearly_even_unverified(model_copy: Path) -> None:
    (model_copy / "router.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ModelUnavailable, match="cannot load the router model"):
        Router(RouterSettings(model_dir=model_copy, verify=False))


def test_a_missing_model_says_how_to_build_it(model_copy: Path) -> None:
    (model_copy / "router.onnx").unlink()
    with pytest.raises(ModelUnavailable, match=r"build it with \./build\.sh model"):
        Router(RouterSettings(model_dir=model_copy))


class Watcher(Agent):
    name = "watcher"
    description = "Watches network links and scans new ones on its own."
    routable = False  # autonomous: reacts to events, takes no commands
    State = NoState

    async def on_weather(self, event: WeatherReport, ctx: Context[NoState]) -> None:
        return None


def test_a_type_that_is_not_routable_is_never_chosen() -> None:
    router = Router()
    router.add_type(BUILTIN_TYPES[1])
    router.add_type(Watcher)
    assert router.agent_types == ["data_collector"]


def test_registering_a_type_never_waits_for_a_build_in_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """add_type runs on the event loop: a slow build in the router's thread (embedding and
    fitting the type head take seconds on a slow core) must not hold it up."""
    started, release = threading.Event(), threading.Event()
    real_fit = TypeHead.fit.__func__  # type: ignore[attr-defined]

    def slow_fit(cls: type[TypeHead], *args: object) -> TypeHead:
        started.set()
        release.wait(10)
        return real_fit(cls, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(TypeHead, "fit", classmethod(slow_fit))
    router = Router()
    router.add_type(BUILTIN_TYPES[0])
    router.add_type(BUILTIN_TYPES[1])
    builder = threading.Thread(target=router._embed_pending)
    builder.start()
    try:
        assert started.wait(10)
        t0 = time.monotonic()
        router.add_type(BUILTIN_TYPES[2])
        assert router.agent_types == [BUILTIN_TYPES[2].name]  # the others are being built
        assert time.monotonic() - t0 < 0.5
    finally:
        release.set()
        builder.join(10)
    router._embed_pending()
    assert router.agent_types == [t.name for t in BUILTIN_TYPES[:3]]
