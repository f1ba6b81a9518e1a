"""Who may import whom (../shared/STYLE.md): a lower layer never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "appliance"

FORBIDDEN = {
    "events.py": ("appliance.",),
    "templating.py": ("appliance.",),  # templates' environment: below everything that renders
    "inventory.py": (
        "appliance.web",
        "appliance.agents",
        "appliance.app",
        "appliance.cli",
        "appliance.hal",
    ),
    "errors.py": ("appliance.",),
    "update": (  # the boot's own steps and qey update: console.py asks appliance.client
        "appliance.web",
        "appliance.agents",
        "appliance.app",
        "appliance.cli",
        "appliance.hal",
        "appliance.router",
        "appliance.runtime",
        "appliance.planner",
    ),
    "runtime": (
        "appliance.web",
        "appliance.hal",
        "appliance.router",
        "appliance.agents",
        "appliance.app",
        "appliance.cli",
        "appliance.settings",
    ),
    "agents": ("appliance.web", "appliance.app", "appliance.cli"),
    "web": ("appliance.agents", "appliance.app", "appliance.cli", "appliance.hal"),
    "router": (
        "appliance.web",
        "appliance.app",
        "appliance.cli",
        "appliance.agents",
        "appliance.hal",
        "appliance.supervisor",
    ),
    "actions": (  # below the agents that use them; console.py is qey's side (appliance.client)
        "appliance.web",
        "appliance.app",
        "appliance.cli",
        "appliance.agents",
        "appliance.hal",
        "appliance.router",
        "appliance.planner",
    ),
    "schedules": (  # console.py is qey's side of it: it may use appliance.client
        "appliance.web",
        "appliance.app",
        "appliance.agents",
        "appliance.hal",
        "appliance.router",
        "appliance.planner",
    ),
    "reports": (  # reads the graph's stored results by shape: the runtime only
        "appliance.web",
        "appliance.agents",
        "appliance.app",
        "appliance.cli",
        "appliance.hal",
        "appliance.router",
    ),
    "hal": (
        "appliance.web",
        "appliance.agents",
        "appliance.app",
        "appliance.cli",
        "appliance.router",
        "appliance.settings",
        "appliance.supervisor",
    ),
    "supervisor": (
        "appliance.web",
        "appliance.agents",
        "appliance.app",
        "appliance.cli",
        "appliance.router",
        "appliance.hal",
    ),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_upward_imports(layer: str) -> None:
    files = [PACKAGE / layer] if layer.endswith(".py") else sorted((PACKAGE / layer).rglob("*.py"))
    assert files
    bad = [
        f"{f.relative_to(PACKAGE)} imports {name}"
        for f in files
        for name in _imports(f)
        if any(name == top or name.startswith(top + ".") for top in FORBIDDEN[layer])
    ]
    assert bad == []
