from __future__ import annotations

import socket

import pytest

from appliance.hal.interfaces import local_addresses, reachable_urls

pytestmark = pytest.mark.unit


def test_this_host_has_loopback_and_lists_it_last() -> None:
    addresses = local_addresses()
    assert "127.0.0.1" in addresses
    assert addresses[-1].startswith("127.")


def test_ipv6_addresses_leave_out_link_local_ones() -> None:
    addresses = local_addresses(socket.AF_INET6)
    assert all(not a.lower().startswith("fe80") for a in addresses)
    if addresses:  # ::1 where the host has IPv6 at all, and it is reachable only from here
        assert "::1" not in addresses or addresses[-1] == "::1"


def test_a_wildcard_panel_url_becomes_one_per_local_address() -> None:
    urls = reachable_urls("https://0.0.0.0:443/")
    assert "https://127.0.0.1:443/" in urls
    assert all(not u.startswith("https://0.0.0.0") for u in urls)
    assert reachable_urls("http://127.0.0.1:8080/") == ["http://127.0.0.1:8080/"]
    six = reachable_urls("https://[::]:443/")
    assert all(u.startswith("https://[") and u.endswith("]:443/") for u in six)
