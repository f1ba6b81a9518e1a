"""Extension entry points load one at a time: a broken one is said, the rest register."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest

from appliance.extensions.loader import GROUP, discover, load_extensions, register_extensions
from appliance.runtime import Runtime, Store
from appliance.scope import Scope
from appliance.settings import Settings

pytestmark = pytest.mark.unit

GOOD = """
from appliance.events import Event
from appliance.runtime import Agent, Context, NoState
from appliance.scope import Scope


class Pinged(Event, tag="{tag}"):
    host: str


class Pinger(Agent):
    name = "{name}"
    description = "pings a host"

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def on_ping(self, event: Pinged, ctx: Context[NoState]) -> str:
        return event.host
"""


def distribution(site: Path, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """A distribution as pip --target leaves it: its modules and a .dist-info."""
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    info = site / f"fake_{uuid.uuid4().hex[:8]}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {info.name[:13]}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def unique() -> str:
    return f"x{uuid.uuid4().hex[:10]}"


def test_a_good_type_loads_beside_broken_ones_each_reported(site: Path) -> None:
    good, broken, plain, kinded = unique(), unique(), unique(), unique()
    distribution(
        site,
        {
            good: GOOD.format(tag=f"{good}.pinged", name=f"{good}_pinger"),
            broken: "import no_such_module_anywhere\n",
            plain: "class NotAnAgent:\n    pass\n",
            kinded: GOOD.format(tag=f"{kinded}.p", name="k").replace(
                "    host: str", "    kind: str"
            ),
        },
        {
            "good": f"{good}:Pinger",
            "broken": f"{broken}:Thing",
            "plain": f"{plain}:NotAnAgent",
            "kinded": f"{kinded}:Pinger",
        },
    )
    out = io.StringIO()
    found = load_extensions(site.parent / "data", out=out)
    assert [cls.name for cls in found.types] == [f"{good}_pinger"]
    assert set(found.failed) == {"broken", "plain", "kinded"}
    assert "ModuleNotFoundError" in found.failed["broken"]
    assert "not an Agent subclass" in found.failed["plain"]
    assert "collides with the tag field" in found.failed["kinded"]
    lines = out.getvalue().splitlines()
    assert sorted(line.split(" failed:")[0] for line in lines) == [
        "qey extension broken",
        "qey extension kinded",
        "qey extension plain",
    ]


def test_a_type_named_like_a_builtin_is_refused(site: Path) -> None:
    mod = unique()
    distribution(
        site, {mod: GOOD.format(tag=f"{mod}.p", name="data_collector")}, {"dup": f"{mod}:Pinger"}
    )
    found = discover(reserved={"data_collector"})
    assert found.types == []
    assert "'data_collector'" in found.failed["dup"]
    assert "name of its own" in found.failed["dup"]


def test_a_constructor_the_appliance_cannot_call_is_refused(site: Path) -> None:
    mod = unique()
    source = GOOD.format(tag=f"{mod}.p", name=f"{mod}_t").replace(
        "def __init__(self, scope: Scope)", "def __init__(self, scope: Scope, secret: str)"
    )
    distribution(site, {mod: source}, {"needy": f"{mod}:Pinger"})
    found = discover()
    assert found.types == []
    assert "'secret'" in found.failed["needy"]


async def test_a_loaded_type_is_registered_with_the_scope_it_asks_for(
    site: Path, tmp_path: Path
) -> None:
    mod = unique()
    distribution(site, {mod: GOOD.format(tag=f"{mod}.p", name=f"{mod}_t")}, {"ok": f"{mod}:Pinger"})
    found = discover()
    runtime = Runtime(Store(tmp_path / "qey.db"))
    scope = Scope(["127.0.0.1/32"])
    register_extensions(runtime, found, scope, Settings.load({"QEY_DATA_DIR": str(tmp_path)}))
    cls = runtime.agent_class(f"{mod}_t")
    assert cls is found.types[0]
    assert found.origins[f"{mod}_t"].endswith(" 1.0")


def test_the_status_api_lists_failed_extensions(tmp_path: Path) -> None:
    from appliance.web.activity import Activity
    from appliance.web.capabilities import RouterStatus
    from appliance.web.overview import build_status

    runtime = Runtime(Store(tmp_path / "qey.db"))
    failed = {"broken": "importing broken:Thing: ModuleNotFoundError: no module"}
    cpu = RouterStatus(provider="cpu")
    status = build_status(runtime, Activity(), cpu, None, failed)
    assert status.failed_extensions == failed
    assert build_status(runtime, Activity(), cpu, None).failed_extensions == {}
