"""The admin's names for devices ("scan the nas"): found as words, checked against the scope
like any address, never looked up; a host name nobody named is refused saying what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.errors import BadCommand, OutOfScope
from appliance.planner.planner import Planner
from appliance.router import Router
from appliance.runtime import Agent
from appliance.scope import Scope
from appliance.settings import Settings
from tests.unit.planner.conftest import make_planner

pytestmark = pytest.mark.unit

NAMES = {"nas": "127.0.0.5", "garage camera": "127.0.0.9", "office": "127.0.0.0/28"}


@pytest.fixture
def named(router: Router, types: dict[str, type[Agent]]) -> Planner:
    names = {**NAMES, "outside": "10.9.9.9"}
    return make_planner(router, types, Scope(["127.0.0.0/24"]), names)


@pytest.mark.parametrize(
    ("command", "targets"),
    [
        ("scan the nas", ["127.0.0.5"]),
        ("scan my Garage  Camera's ports", ["127.0.0.9"]),
        ("is telnet open on nas.lan", ["127.0.0.5"]),
        ("sweep the office", ["127.0.0.0/28"]),
    ],
)
async def test_a_named_device_is_its_address(
    named: Planner, command: str, targets: list[str]
) -> None:
    plan = await named.plan(command)
    assert [t for s in plan.steps for t in s.params.targets] == targets
    assert not plan.unused


async def test_a_name_and_an_address_are_two_targets(named: Planner) -> None:
    plan = await named.plan("scan the nas and 127.0.0.3")
    assert sorted(t for s in plan.steps for t in s.params.targets) == ["127.0.0.3", "127.0.0.5"]


async def test_a_named_device_outside_the_scope_is_refused(named: Planner) -> None:
    direct = await named.plan("scan the outside")  # one step: its type refuses it itself
    assert direct.out_of_scope and "10.9.9.9" in direct.out_of_scope[0]
    with pytest.raises(OutOfScope, match=r"10\.9\.9\.9"):
        await named.plan("scan the nas then scan the outside")


async def test_a_host_name_nobody_named_is_refused_saying_what_to_do(named: Planner) -> None:
    with pytest.raises(BadCommand, match=r"'printer\.lan'.*\[names\]"):
        await named.plan("scan printer.lan")


async def test_a_word_inside_another_is_not_a_name(named: Planner) -> None:
    plan = await named.plan("scan 127.0.0.2 for the nasty ports")
    assert [t for s in plan.steps for t in s.params.targets] == ["127.0.0.2"]


def test_names_load_from_config_toml_lowercased(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[names]\nNAS = "127.0.0.5"\n"garage  camera" = "127.0.0.9/32"\n'
    )
    settings = Settings.load({"QEY_DATA_DIR": str(tmp_path)})
    assert settings.names == {"nas": "127.0.0.5", "garage camera": "127.0.0.9"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('nas = "my nas"', r"names: 'nas'.*not an IP address"),
        ('"n@s" = "127.0.0.5"', r"names: 'n@s' is not a name"),
        ('nas = "127.0.0.5"\nNAS = "127.0.0.6"', r"names: 'NAS' is named twice"),
    ],
)
def test_a_bad_name_fails_at_start_naming_it(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "config.toml").write_text(f"[names]\n{table}\n")
    with pytest.raises(ValueError, match=message):
        Settings.load({"QEY_DATA_DIR": str(tmp_path)})
