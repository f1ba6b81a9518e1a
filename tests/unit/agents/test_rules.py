from __future__ import annotations

from pathlib import Path

import pytest

from appliance.agents.rules import PortRules

pytestmark = pytest.mark.unit


def test_packaged_rules_rate_known_ports() -> None:
    rules = PortRules.load()
    telnet = rules.assess("127.0.0.1", 23)
    assert (telnet.service, telnet.severity) == ("telnet", "critical")
    assert rules.needs_action(telnet)
    assert not rules.needs_action(rules.assess("127.0.0.1", 22))


def test_an_unknown_port_gets_the_default_rule() -> None:
    assert PortRules.load().assess("127.0.0.1", 47123).title == "Unexpected open port"


def test_a_broken_rules_file_names_itself(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('[default]\nservice = "x"\nseverity = "dire"\ntitle = "t"\nadvice = "a"\n')
    with pytest.raises(ValueError, match=r"rules.toml.*severity"):
        PortRules.load(bad)
