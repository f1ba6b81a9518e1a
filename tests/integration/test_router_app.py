"""The router wired into the appliance: routed jobs run, refusals are clear at every edge."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from appliance.agents.collector import DataCollector
from appliance.agents.messages import ScanReport
from appliance.app import Appliance, in_process
from appliance.errors import NoConfidentMatch, ProviderUnavailable
from appliance.router.phrase_cache import CACHE_FILE
from appliance.scope import Scope
from appliance.settings import Settings
from appliance.web.api import make_api

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def test_a_routed_scan_command_runs_on_the_data_collector(
    settings: Settings, open_ports: list[int]
) -> None:
    async with asyncio.timeout(30), in_process(settings) as appliance:
        _, root, route = await appliance.submit(f"scan 127.0.0.1 ports {open_ports[1]}")
        outcome = await appliance.runtime.wait_task(root)
    assert route is not None and route.agent_type == "data_collector"
    assert root.agent_type == "data_collector"
    assert outcome.status == "done", outcome.detail
    report = outcome.result_as(ScanReport)
    assert [(h.host, h.open_ports) for h in report.open] == [("127.0.0.1", [open_ports[1]])]


async def test_a_command_for_a_failed_type_goes_to_the_next_confident_candidate(
    settings: Settings, open_ports: list[int]
) -> None:
    class BackupCollector(DataCollector):
        name = "backup_collector"

    async with asyncio.timeout(30), in_process(settings) as appliance:
        scope = Scope(settings.scope)
        appliance.runtime.register(BackupCollector, lambda: BackupCollector(scope, settings))
        appliance.runtime.fail_type("data_collector", "restarted too often (test)")
        _, root, route = await appliance.submit(f"scan 127.0.0.1 ports {open_ports[0]}")
        outcome = await appliance.runtime.wait_task(root)
    assert route is not None and {route.agent_type} <= {"data_collector", "backup_collector"}
    assert root.agent_type == "backup_collector" and outcome.status == "done"


async def test_no_confident_match_starts_nothing_and_names_candidates(settings: Settings) -> None:
    async with asyncio.timeout(60), in_process(settings) as appliance:
        with pytest.raises(NoConfidentMatch, match="closest: ") as caught:
            await appliance.submit("make me a sandwich")
        assert await appliance.runtime.graph.jobs() == []
    assert len(caught.value.candidates) == 3


async def test_the_api_returns_the_route_and_refuses_nonsense_with_a_4xx(
    settings: Settings, aiohttp_client: Any
) -> None:
    async with asyncio.timeout(60), in_process(settings) as appliance:
        client = await aiohttp_client(make_api(appliance.runtime, appliance.submit))
        ok = await client.post(
            "/api/v1/jobs", json={"command": "analyze network security posture of 127.0.0.1"}
        )
        body = await ok.json()
        refused = await client.post("/api/v1/jobs", json={"command": "tell me a joke"})
        error = await refused.json()
        named = await client.post(
            "/api/v1/jobs",
            json={"command": "assess the posture of 127.0.0.2", "agent_type": "coordinator"},
        )
        mistyped = await client.post(
            "/api/v1/jobs", json={"command": "tell me a joke", "agent_type": "coordinator"}
        )
    assert ok.status == 202
    assert body["agent_type"] == "coordinator"
    assert body["route"]["agent_type"] == "coordinator"
    assert body["route"]["provider"] == "CPUExecutionProvider"
    assert refused.status == 422
    assert error["error"] == "NoConfidentMatch" and "closest: " in error["message"]
    assert named.status == 202 and (await named.json())["route"] is None
    assert mistyped.status == 400 and (await mistyped.json())["error"] == "BadCommand"


def test_qey_route_prints_one_json_object_per_line(settings: Settings) -> None:
    env = {**os.environ, "QEY_DATA_DIR": str(settings.data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "route", "-"],
        input="scan 127.0.0.1 ports 22\nmake me a sandwich\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    import json

    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["agent_type"] for d in lines] == ["data_collector", None]
    assert all(d["provider"] == "CPUExecutionProvider" for d in lines)
    assert lines[1]["alternatives"] and lines[0]["command"] == "scan 127.0.0.1 ports 22"


def test_qey_route_strict_without_the_provider_fails_clearly(settings: Settings) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance.cli",
            "route",
            "--device",
            "NPU",
            "--strict",
            "scan 127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert (
        "strict mode: the router needs a device of type NPU and there is none: "
        "the board names no plugin execution provider"
    ) in done.stderr


def board_with_router(tmp_path: Path, router: str) -> Path:
    """The sim board profile with its [router] table replaced."""
    sim = (ROOT / "hw" / "boards" / "sim.toml").read_text()
    head, _, tail = sim.partition("[router]")
    board = tmp_path / "board.toml"
    board.write_text(head + router + tail[tail.index("\n[") :])
    return board


def test_a_strict_board_without_its_npu_library_refuses_to_start(
    settings: Settings, tmp_path: Path
) -> None:
    board = board_with_router(
        tmp_path,
        f'[router]\ndevices = ["NPU"]\nstrict = true\nplugin = {{ path = "{tmp_path}/npu.so" }}\n',
    )
    with pytest.raises(
        ProviderUnavailable, match=f"^strict mode: no provider library at {tmp_path}/npu.so$"
    ):
        Appliance(msgspec.structs.replace(settings, board=str(board)))


async def test_the_boards_providers_reach_the_router_and_its_phrases_are_kept(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "npu.so").write_bytes(b"\x7fELF but not really a library" * 8)
    board = board_with_router(
        tmp_path, f'[router]\ndevices = ["NPU"]\nplugin = {{ path = "{tmp_path}/npu.so" }}\n'
    )
    with caplog.at_level(logging.WARNING, logger="appliance.router"):
        async with (
            asyncio.timeout(30),
            in_process(msgspec.structs.replace(settings, board=str(board))) as appliance,
        ):
            assert appliance.router.provider == "CPUExecutionProvider"
            assert appliance.router.placement.wanted == ["NPU"]
    # the board's library was tried (a default router names none), and the fallback was said
    assert f"a fallback: cannot load the provider library {tmp_path}/npu.so" in caplog.text
    assert (settings.data_dir / "router" / CACHE_FILE).stat().st_size > 10_000
