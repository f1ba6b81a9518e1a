"""What may be a scan scope: no address that is not a host, nothing vast by accident, no
entry twice; the same rules for the panel, config.toml and $QEY_SCOPE."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from appliance.errors import BadCommand
from appliance.scope import Scope
from appliance.settings import Settings, write_scope

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("0.0.0.0/0", "this host"),
        ("0.0.0.0/32", "this host"),
        ("0.0.0.0", "this host"),
        ("0.1.2.3", "this host"),
        ("::/0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:0.0.0.0", "this host"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250/32", "multicast"),
        ("224.0.0.0/4", "multicast"),
        ("ff02::1", "multicast"),
        ("::ffff:224.0.0.251", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("255.255.255.255/32", "broadcast"),
    ],
)
def test_an_address_that_is_not_a_host_is_refused_naming_it(entry: str, why: str) -> None:
    with pytest.raises(BadCommand, match=why) as refused:
        Scope(["127.0.0.1", entry])
    assert repr(entry) in str(refused.value)


def test_duplicates_and_networks_inside_others_are_collapsed() -> None:
    scope = Scope(["127.0.0.1", "127.0.0.0/24", "127.0.0.1/32", "::1", "::1/128", "127.0.0.9"])
    assert [str(n) for n in scope.networks] == ["127.0.0.0/24", "::1/128"]


@pytest.mark.parametrize("entry", ["10.0.0.0/15", "10.0.0.0/8", "fd00::/48", "2001:db8::/32"])
def test_a_large_range_needs_confirming_and_the_error_says_how(entry: str) -> None:
    with pytest.raises(BadCommand, match="confirm_large") as refused:
        Scope([entry])
    assert repr(entry) in str(refused.value) and "addresses" in str(refused.value)
    assert [str(n) for n in Scope([entry], confirm_large=True).networks] == [entry]


@pytest.mark.parametrize("entry", ["10.0.0.0/16", "192.168.1.0/24", "fd00::/64", "127.0.0.0/8"])
def test_a_range_up_to_the_limit_and_loopback_need_no_confirming(entry: str) -> None:
    assert [str(n) for n in Scope([entry]).networks] == [entry]


def test_a_bad_scope_in_config_toml_fails_at_start_naming_file_and_entry(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('scope = ["127.0.0.1", "0.0.0.0/0"]\n')
    with pytest.raises(ValueError, match=r"config\.toml.*'0\.0\.0\.0/0'.*this host"):
        Settings.load({"QEY_DATA_DIR": str(tmp_path)})


def test_a_bad_qey_scope_fails_at_start_naming_it(tmp_path: Path) -> None:
    env = {"QEY_DATA_DIR": str(tmp_path), "QEY_SCOPE": "127.0.0.1, 255.255.255.255"}
    with pytest.raises(ValueError, match=r"QEY_SCOPE.*'255\.255\.255\.255'.*broadcast"):
        Settings.load(env)
    with pytest.raises(ValueError, match=r"QEY_SCOPE.*'10\.0\.0\.0/8'.*confirm"):
        Settings.load({**env, "QEY_SCOPE": "10.0.0.0/8"})
    confirmed = Settings.load({**env, "QEY_SCOPE": "10.0.0.0/8", "QEY_SCOPE_CONFIRM_LARGE": "1"})
    assert confirmed.scope == ["10.0.0.0/8"]


def test_the_scope_from_config_is_collapsed_at_start(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('scope = ["127.0.0.1", "127.0.0.0/30", "127.0.0.1"]\n')
    assert Settings.load({"QEY_DATA_DIR": str(tmp_path)}).scope == ["127.0.0.0/30"]


def test_a_confirmed_large_scope_is_saved_with_its_confirmation(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("ports = [22]\nscope_confirm_large = false\n")
    write_scope(tmp_path, ["10.0.0.0/8"], confirm_large=True)
    settings = Settings.load({"QEY_DATA_DIR": str(tmp_path)})
    assert (settings.scope, settings.scope_confirm_large, settings.ports) == (
        ["10.0.0.0/8"],
        True,
        [22],
    )
    write_scope(tmp_path, ["127.0.0.1/32"])  # nothing large: no confirmation is kept
    saved = tomllib.loads((tmp_path / "config.toml").read_text())
    assert saved == {"scope": ["127.0.0.1/32"], "ports": [22]}


def test_saving_the_scope_replaces_an_array_written_over_several_lines(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "# the admin's own words\n"
        'scope = [\n  "127.0.0.1",  # this box\n  "127.0.0.2",\n]\n'
        "ports = [22]\n"
    )
    write_scope(tmp_path, ["127.0.0.0/30"])
    text = (tmp_path / "config.toml").read_text()
    assert tomllib.loads(text) == {"scope": ["127.0.0.0/30"], "ports": [22]}
    assert "# the admin's own words" in text
    assert Settings.load({"QEY_DATA_DIR": str(tmp_path)}).scope == ["127.0.0.0/30"]


def test_saving_the_scope_keeps_tables_and_comments_where_they_were(tmp_path: Path) -> None:
    original = (
        "ports = [22]  # only ssh\n\n"
        '[names]\n# what the household calls things\nnas = "127.0.0.9"\n'
    )
    (tmp_path / "config.toml").write_text(original)
    write_scope(tmp_path, ["127.0.0.0/28"])
    text = (tmp_path / "config.toml").read_text()
    # the scope goes in among the top-level keys; nothing the admin wrote moved or changed
    assert text.replace('scope = ["127.0.0.0/28"]\n', "") == original
    assert tomllib.loads(text) == {
        "scope": ["127.0.0.0/28"],
        "ports": [22],
        "names": {"nas": "127.0.0.9"},
    }
