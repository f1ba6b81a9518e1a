"""Port rules as data: the analyzer's knowledge lives in port_rules.toml, not in code."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec

from appliance.agents.messages import SEVERITIES, Finding, Severity


class _Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    service: str
    severity: Severity
    title: str
    advice: str
    ports: list[int] = []


class _Policy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    act_at: Severity = "medium"


class _RuleFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    default: _Rule
    rule: list[_Rule] = []
    policy: _Policy = _Policy()


class PortRules:
    def __init__(self, rules: _RuleFile) -> None:
        self._by_port = {port: rule for rule in rules.rule for port in rule.ports}
        self._default = rules.default
        self.act_at: Severity = rules.policy.act_at

    @classmethod
    def load(cls, path: Path | None = None) -> PortRules:
        """The packaged rules, or a file the operator provides; errors name the file."""
        # beside this module: importlib.resources would bring zipfile and tempfile to a start
        source = path or Path(__file__).with_name("port_rules.toml")
        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
            return cls(msgspec.convert(data, _RuleFile))
        except (tomllib.TOMLDecodeError, msgspec.ValidationError) as err:
            raise ValueError(f"{source}: {err}") from err

    def assess(self, host: str, port: int) -> Finding:
        rule = self._by_port.get(port, self._default)
        return Finding(
            host=host,
            port=port,
            service=rule.service,
            severity=rule.severity,
            title=rule.title,
            advice=rule.advice,
        )

    def needs_action(self, finding: Finding) -> bool:
        return SEVERITIES.index(finding.severity) >= SEVERITIES.index(self.act_at)
