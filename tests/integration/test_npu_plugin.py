"""The router through a real plugin execution provider: OpenVINO's (the onnxruntime-ep-openvino
wheel, a test requirement only, never in the image), on this machine's CPU. The whole path a
board vendor's NPU provider takes: the profile names the package, the appliance registers its
library, picks a listed device by the board's order, builds the session on it, and says which
provider and device run the model in the log, the ready line, the API and the System page.

The plugin's outputs are compared with the CPU provider's: close (the same model), but not the
same bits, so a silent fallback to the CPU provider cannot pass."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import platform
import re
import signal
import sys
from pathlib import Path

import aiohttp
import msgspec
import numpy as np
import pytest

from appliance.agents import BUILTIN_TYPES
from appliance.app import Appliance
from appliance.errors import ProviderUnavailable
from appliance.router import Plugin, Router, RouterSettings
from appliance.router.router import normalise, phrases_of
from appliance.settings import Settings
from appliance.web.credentials import Credentials
from tests.web.conftest import PASSWORD

if not (sys.platform == "linux" and platform.machine() == "x86_64"):
    pytest.skip("onnxruntime-ep-openvino has wheels for x86-64 Linux only", allow_module_level=True)

import onnxruntime
import onnxruntime_ep_openvino  # the dev extra installs it here: missing is a failure

pytestmark = [pytest.mark.integration, pytest.mark.npu_plugin]

# The plugin (1.8.1) lists a device only where its vendor is Intel, this CPU included: on an AMD
# CPU it lists none at all, though OpenVINO itself runs there (microsoft/onnxruntime#31981
# lifts that for CPUs). The tests that need it to run the model say so and are skipped on other
# CPUs; on an Intel CPU they run, so a plugin that stops listing its device there fails them.
INTEL = 0x8086
CPU_VENDOR_ID = next(
    d.device.vendor_id
    for d in onnxruntime.get_ep_devices()
    if d.device.type == onnxruntime.OrtHardwareDeviceType.CPU
)
LISTS_THIS_CPU = CPU_VENDOR_ID == INTEL
needs_the_plugins_cpu = pytest.mark.skipif(
    not LISTS_THIS_CPU,
    reason=f"onnxruntime-ep-openvino lists Intel devices only; this CPU's vendor id is "
    f"{CPU_VENDOR_ID:#06x} (microsoft/onnxruntime#31981)",
)

ROOT = Path(__file__).resolve().parents[2]
OPENVINO = "OpenVINOExecutionProvider"
QEY = (sys.executable, "-m", "appliance.cli")
PACKAGE = onnxruntime_ep_openvino.__name__
COMMANDS = [
    "scan 127.0.0.1 ports 22,80",
    "analyze network security posture of 127.0.0.1",
    "how dangerous is an open telnet port on 127.0.0.1",
    "record the finding about port 23 in the report",
    "find the hosts on 10.0.0.0/24",
    "block my calendar for tomorrow",
]


def board_with_router(tmp_path: Path, router: str) -> Path:
    """The sim board profile with its [router] table replaced."""
    sim = (ROOT / "hw" / "boards" / "sim.toml").read_text()
    head, _, tail = sim.partition("[router]")
    board = tmp_path / "board.toml"
    board.write_text(head + router + tail[tail.index("\n[") :])
    return board


OPENVINO_BOARD = (
    f'[router]\ndevices = ["NPU", "GPU", "CPU"]\nplugin = {{ package = "{PACKAGE}" }}\n'
)
# why a board that wants an NPU gets none: the plugin lists this CPU only, or nothing at all;
# a strict board's refusal says the first as a device type it lacks, the second as it is
WHY_NO_NPU = (
    f"{OPENVINO} and {OPENVINO}.AUTO list no NPU device here (only CPU)"
    if LISTS_THIS_CPU
    else f"{onnxruntime_ep_openvino.get_library_path()} lists no device on this machine"
)
STRICT_REFUSAL = (
    f"strict mode: the router needs a device of type NPU and there is none: {WHY_NO_NPU}"
    if LISTS_THIS_CPU
    else f"strict mode: {WHY_NO_NPU}"
)


@pytest.fixture(scope="module")
def routers() -> tuple[Router, Router]:
    """The same model on the plugin's device and on the CPU provider (no agent types: on this
    CPU the plugin embeds a phrase in ~20 ms, and the built-in types have 1,600)."""
    plugin = Router(RouterSettings(plugin=Plugin(package=PACKAGE), devices=["NPU", "GPU", "CPU"]))
    return plugin, Router()


@needs_the_plugins_cpu
def test_the_router_runs_on_the_plugins_device_by_the_boards_order(
    routers: tuple[Router, Router],
) -> None:
    placement = routers[0].placement
    assert (placement.provider, placement.device) == (OPENVINO, "CPU")
    assert placement.vendor and placement.wanted == ["NPU", "GPU", "CPU"]
    assert placement.library == onnxruntime_ep_openvino.get_library_path()
    # onnxruntime's own record of the session: every node on the plugin, none on the CPU's
    assert placement.nodes_on_provider == placement.nodes > 100
    # this CPU has no NPU or GPU for OpenVINO: the third choice, and said so
    assert "no NPU or GPU device here (only CPU)" in placement.fallback
    assert routers[1].placement.provider == "CPUExecutionProvider"


@needs_the_plugins_cpu
def test_the_plugins_vectors_match_the_cpu_providers(routers: tuple[Router, Router]) -> None:
    plugin, cpu = routers
    texts = [normalise(c) for c in COMMANDS]
    texts += [normalise(p) for cls in BUILTIN_TYPES for p in phrases_of(cls)[:10]]
    on_plugin = plugin._encoder.embed(texts)
    on_cpu = cpu._encoder.embed(texts)
    difference = float(np.abs(on_plugin - on_cpu).max())
    assert difference < 0.06, difference  # int8 kernels of two libraries: ~0.02 measured
    assert float((on_plugin * on_cpu).sum(axis=1).min()) > 0.98
    assert difference > 1e-4, "bit for bit the CPU provider's: the plugin did not run"


@needs_the_plugins_cpu
def test_a_strict_board_runs_every_node_on_the_plugin() -> None:
    """Strict: onnxruntime may not move a node the plugin lacks to the CPU provider."""
    router = Router(
        RouterSettings(
            plugin=Plugin(package=PACKAGE, provider=OPENVINO), devices=["CPU"], strict=True
        )
    )
    placement = router.placement
    assert (placement.provider, placement.fallback) == (OPENVINO, "")
    assert placement.nodes_on_provider == placement.nodes


def test_a_strict_board_without_the_plugins_npu_refuses_to_start(
    settings: Settings, tmp_path: Path
) -> None:
    board = board_with_router(
        tmp_path,
        f'[router]\ndevices = ["NPU"]\nstrict = true\nplugin = {{ package = "{PACKAGE}" }}\n',
    )
    with pytest.raises(ProviderUnavailable, match=rf"^{re.escape(STRICT_REFUSAL)}$"):
        Appliance(msgspec.structs.replace(settings, board=str(board)))


def test_a_plugin_without_the_wanted_npu_falls_back_to_the_cpu_provider(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="appliance.router"):
        router = Router(RouterSettings(plugin=Plugin(package=PACKAGE), devices=["NPU"]))
    assert router.placement.provider == "CPUExecutionProvider"
    assert router.placement.library == ""
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        m.startswith("router: runs on CPUExecutionProvider on CPU")
        and f"a fallback: {WHY_NO_NPU}" in m
        for m in warned
    ), warned


@needs_the_plugins_cpu
async def test_qey_run_says_the_plugin_and_its_device_in_the_ready_line_api_and_panel(
    settings: Settings, tmp_path: Path
) -> None:
    """The whole path, as the owner sees it: ``qey run`` on a board that names the plugin's
    package; its ready line, its log, the status API and the System page, and a route."""
    board = board_with_router(tmp_path, OPENVINO_BOARD)
    Credentials(settings.data_dir).set_password(PASSWORD)
    env = {
        **os.environ,
        "QEY_DATA_DIR": str(settings.data_dir),
        "QEY_BOARD": str(board),
        "QEY_WEB_LISTEN": "127.0.0.1:0",
    }
    process = await asyncio.create_subprocess_exec(
        *QEY, "run", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(240):  # the plugin embeds the types' 1,600 phrases first
            ready = (await process.stdout.readline()).decode()
            panel = (await process.stdout.readline()).decode()
        base = re.match(r"qey panel (http://127\.0\.0\.1:\d+)/", panel)
        assert ready.startswith("qey ready ") and base, (ready, panel)
        jar = aiohttp.CookieJar(unsafe=True)  # the panel's cookies on an IP address
        async with asyncio.timeout(60), aiohttp.ClientSession(cookie_jar=jar) as http:
            status = await _signed_in_get(http, base.group(1), "/api/v1/status")
            page = html.unescape(await _signed_in_get(http, base.group(1), "/system"))
        # the running appliance kept the phrases' vectors: `qey route` loads them
        routed = await asyncio.wait_for(_qey(env, "route", "scan 127.0.0.1 ports 22"), 120)
    finally:
        process.send_signal(signal.SIGTERM)
        _, log = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, log.decode()[-3000:]

    said = ready.split(" router=", 1)[1].strip()
    assert said.startswith(f"{OPENVINO} on CPU ("), ready
    assert said.endswith(
        f"a fallback: {OPENVINO} and {OPENVINO}.AUTO list no NPU or GPU device here (only CPU)"
    ), ready
    assert f"router: runs on {said}" in log.decode()  # the log says the same

    router = json.loads(status)["router"]
    assert (router["provider"], router["device"]) == (OPENVINO, "CPU") and router["vendor"]
    assert router["wanted"] == ["NPU", "GPU", "CPU"] and "no NPU or GPU" in router["fallback"]
    assert router["nodes_on_provider"] == router["nodes"] > 100
    assert f"{OPENVINO} on CPU ({router['vendor']})" in page
    assert "NPU, then GPU, then CPU · plugin " + router["library"] in page

    decision = json.loads(routed)
    assert (decision["agent_type"], decision["provider"]) == ("data_collector", OPENVINO)


async def _signed_in_get(http: aiohttp.ClientSession, base: str, path: str) -> str:
    if not any(c.key == "qey_session" for c in http.cookie_jar):
        async with http.get(f"{base}/login") as form:
            token = re.search(r'name="csrf_token" value="([^"]+)"', await form.text())
        assert token
        fields = {"csrf_token": token.group(1), "password": PASSWORD}
        async with http.post(f"{base}/login", data=fields, allow_redirects=False) as resp:
            assert resp.status == 303
    async with http.get(f"{base}{path}") as resp:
        assert resp.status == 200, path
        return await resp.text()


async def _qey(env: dict[str, str], *args: str) -> str:
    done = await asyncio.create_subprocess_exec(
        *QEY, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await done.communicate()
    assert done.returncode == 0, err.decode()
    return out.decode()
