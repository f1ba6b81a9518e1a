"""An extension that failed to load is said on the Overview, escaped, beside the API's
``failed_extensions``; with none failed, nothing is said."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.runtime import FakeClock, Runtime
from appliance.web.credentials import Credentials
from appliance.web.keys import FAILED_EXTENSIONS
from tests.web.conftest import PASSWORD, make_test_panel, sign_in

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("failed", [{}, {"tls_checker": "ImportError: no <module> named x"}])
async def test_the_system_and_home_pages_say_which_extensions_failed(
    runtime: Runtime,
    credentials: Credentials,
    clock: FakeClock,
    aiohttp_client: Any,
    failed: dict[str, str],
) -> None:
    app = make_test_panel(runtime, credentials, clock)
    app[FAILED_EXTENSIONS] = failed
    client = await aiohttp_client(app)
    await sign_in(client, PASSWORD)
    page = await (await client.get("/system")).text()
    home = await (await client.get("/")).text()
    status = await (await client.get("/api/v1/status")).json()
    assert status["failed_extensions"] == failed
    if failed:
        assert "Extensions that failed to load: tls_checker: ImportError: no &lt;module&gt;" in page
        assert "The extension tls_checker did not load (ImportError: no &lt;module&gt;" in home
    else:
        assert "Extensions that failed" not in page and "did not load" not in home
