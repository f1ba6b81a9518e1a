from __future__ import annotations

import pytest

from appliance.hal.interfaces import local_ipv4_addresses, reachable_urls

pytestmark = pytest.mark.unit


def test_this_host_has_loopback_and_lists_it_last() -> None:
    addresses = local_ipv4_addresses()
    assert "127.0.0.1" in addresses
    assert addresses[-1].startswith("127.")


def test_a_wildcard_panel_url_becomes_one_per_local_address() -> None:
    urls = reachable_urls("https://0.0.0.0:443/")
    assert "https://127.0.0.1:443/" in urls
    assert all(not u.startswith("https://0.0.0.0") for u in urls)
    assert reachable_urls("http://127.0.0.1:8080/") == ["http://127.0.0.1:8080/"]
