"""Where the router runs, as the status API and the System page say it: the provider and the
device, and when it is not what the board wants first, that it fell back and why."""

from __future__ import annotations

import html
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient

from appliance.runtime import Runtime
from appliance.web.capabilities import RouterStatus
from appliance.web.credentials import Credentials
from appliance.web.overview import StatusView
from tests.web.conftest import PASSWORD, make_test_panel, sign_in

pytestmark = pytest.mark.unit

ON_THE_NPU = RouterStatus(
    provider="VendorNpuExecutionProvider",
    device="NPU",
    vendor="Vendor",
    wanted=["NPU", "CPU"],
    library="/usr/lib/qey/npu/libnpu.so",
    nodes=453,
    nodes_on_provider=400,
)
FELL_BACK = RouterStatus(
    provider="CPUExecutionProvider",
    device="CPU",
    vendor="Intel",
    wanted=["NPU"],
    fallback="no provider library at /usr/lib/qey/npu/libnpu.so",
    nodes=453,
    nodes_on_provider=453,
)


async def panel_with(
    router: RouterStatus, runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(
        make_test_panel(runtime, credentials, router=router)
    )
    assert await sign_in(client, PASSWORD) == 303
    return client


async def test_the_status_says_the_provider_and_device_that_run_the_router(
    runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    client = await panel_with(ON_THE_NPU, runtime, credentials, aiohttp_client)
    body = await (await client.get("/api/v1/status")).read()
    status = msgspec.json.decode(body, type=StatusView)  # the type the API encodes
    assert status.router == ON_THE_NPU
    assert status.router_provider == "VendorNpuExecutionProvider"
    page = html.unescape(await (await client.get("/system")).text())
    assert (
        "VendorNpuExecutionProvider on NPU (Vendor) · 400 of 453 model nodes, "
        "the rest on the CPU provider"
    ) in page
    assert "NPU, then CPU · plugin /usr/lib/qey/npu/libnpu.so" in page
    assert 'id="router-fallback"' not in page


async def test_a_fallback_to_the_cpu_is_said_with_its_reason(
    runtime: Runtime, credentials: Credentials, aiohttp_client: Any
) -> None:
    client = await panel_with(FELL_BACK, runtime, credentials, aiohttp_client)
    status = await (await client.get("/api/v1/status")).json()
    assert status["router"]["fallback"] == "no provider library at /usr/lib/qey/npu/libnpu.so"
    assert (status["router"]["provider"], status["router"]["device"]) == (
        "CPUExecutionProvider",
        "CPU",
    )
    page = html.unescape(await (await client.get("/system")).text())
    assert 'id="router-fallback"' in page
    assert (
        "The router runs on CPUExecutionProvider on CPU, a fallback from what the board wants "
        "(NPU): no provider library at /usr/lib/qey/npu/libnpu.so"
    ) in page
