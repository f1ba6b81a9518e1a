"""5. The idle runtime: import time and resident memory, against a bare ``import asyncio``.

Every figure comes from a fresh ``python -c`` child. Import time: ``time.perf_counter()``
around ``import appliance.runtime`` (baseline: around ``import asyncio``). RSS: VmRSS of a
process running a Runtime with the four built-in agents registered, idle for 1 s (baseline:
a process that imported asyncio and ran ``asyncio.sleep(1)``).

Each is measured twice: as this environment runs Python ("no .pyc" where it sets
PYTHONDONTWRITEBYTECODE: the project's own modules are then compiled from source at every
start), and with bytecode cached (".pyc cached": that variable unset, PYTHONPYCACHEPREFIX in a
temp dir, so nothing is written into the repo), which is how an installed appliance runs.
Reference lines say where the time and the memory go.

A started runtime's RSS is measured on its first start (the store makes its schema, which
imports sqlite-utils) and on a later one (the schema is current: every boot after the first),
whose figure the goal is for.

A reference line gives the floor under the RSS goal: a process that imports asyncio, msgspec
and sqlite3 (the three the runtime stands on, as the mission names them), writes one row to a
database in WAL mode and idles, with none of our code. What the goal leaves above that floor
is what the runtime, its store and the four agents may take.

Goals: RSS <= 25 MB, import time <= 0.1 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping

from _common import figure, goal, header, median, ratio, run_child

REPS = 5
RSS_REPS = 3
IDLE_S = 1.0

_RSS = """
def rss(field="VmRSS:"):
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith(field))
"""

IMPORT_CHILD = """
import json, time
t = time.perf_counter()
import {module}
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""

BARE_CHILD = (
    _RSS
    + """
import asyncio, json
asyncio.run(asyncio.sleep({idle}))
print(json.dumps({{"rss": rss(), "peak": rss("VmHWM:")}}))
"""
)

RUNTIME_CHILD = (
    _RSS
    + """
import asyncio, json
from pathlib import Path
from appliance.agents import register_builtin
from appliance.runtime import Runtime, Store, running
from appliance.settings import Settings

async def main():
    settings = Settings(data_dir=Path({data_dir!r}))
    store = Store(settings.db_path)
    try:
        runtime = Runtime(store)
        register_builtin(runtime, settings)
        assert len(runtime.agent_types) >= 4
        async with running(runtime):
            await asyncio.sleep({idle})
            now, peak = rss(), rss("VmHWM:")
    finally:
        store.close()
    print(json.dumps({{"rss": now, "peak": peak}}))

asyncio.run(main())
"""
)

FLOOR_CHILD = (
    _RSS
    + """
import asyncio, json, sqlite3
import msgspec
from pathlib import Path

async def main():
    db = sqlite3.connect(Path({data_dir!r}) / "floor.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB)")
    db.execute("INSERT OR REPLACE INTO t VALUES (1, ?)", (msgspec.msgpack.encode([1]),))
    db.commit()
    await asyncio.sleep({idle})
    print(json.dumps({{"rss": rss(), "peak": rss("VmHWM:")}}))
    db.close()

asyncio.run(main())
"""
)

STAGES_CHILD = (
    _RSS
    + """
import json
stages = {{"python": rss()}}
for module in ("asyncio", "msgspec", "appliance.runtime", "appliance.agents"):
    __import__(module)
    stages[module] = rss()
import tempfile
from pathlib import Path
from appliance.runtime import Store
with tempfile.TemporaryDirectory(prefix="qey-bench-") as tmp:
    Store(Path(tmp) / "qey.db").close()
    stages["first Store (imports sqlite-utils)"] = rss()
print(json.dumps(stages))
"""
)

WATCHED = ("asyncio", "msgspec", "sqlite3", "sqlite_utils", "appliance.events", "appliance.runtime")


def import_seconds(module: str, env: Mapping[str, str]) -> float:
    run_child(["-c", IMPORT_CHILD.format(module=module)], env=env)  # warm caches, not counted
    runs = [run_child(["-c", IMPORT_CHILD.format(module=module)], env=env) for _ in range(REPS)]
    return median([r["seconds"] for r in runs])


def import_breakdown(module: str, env: Mapping[str, str]) -> dict[str, float]:
    """Cumulative microseconds of the watched modules, from one ``-X importtime`` child."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    found: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        if name.strip() in WATCHED and cumulative.strip().isdigit():
            found[name.strip()] = float(cumulative)
    return found


def rss(code: str, env: Mapping[str, str], **fields: str) -> tuple[float, float]:
    """Median VmRSS at the end of the idle second, and median peak RSS, both in bytes."""
    runs = [run_child(["-c", code.format(idle=IDLE_S, **fields)], env=env) for _ in range(RSS_REPS)]
    return median([r["rss"] for r in runs]), median([r["peak"] for r in runs])


def started(env: Mapping[str, str], *, first: bool) -> tuple[float, float]:
    """A started runtime's RSS: on its first start (the store makes its schema, with
    sqlite-utils) or on a later one (the schema is current), as an appliance starts at every
    boot after its first."""
    with tempfile.TemporaryDirectory(prefix="qey-bench-data-") as data_dir:
        if not first:
            run_child(["-c", RUNTIME_CHILD.format(idle=0, data_dir=data_dir)], env=env)
            return rss(RUNTIME_CHILD, env, data_dir=data_dir)
        measured = []
        for _ in range(RSS_REPS):
            with tempfile.TemporaryDirectory(prefix="qey-bench-data-") as fresh:
                one = RUNTIME_CHILD.format(idle=IDLE_S, data_dir=fresh)
                measured.append(run_child(["-c", one], env=env))
        return median([r["rss"] for r in measured]), median([r["peak"] for r in measured])


def main() -> None:
    header(f"idle runtime: fresh child processes (import median of {REPS}, RSS of {RSS_REPS})")
    with tempfile.TemporaryDirectory(prefix="qey-bench-pyc-") as pyc:
        here = dict(os.environ)
        cached = {k: v for k, v in here.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = pyc
        how = "no .pyc" if here.get("PYTHONDONTWRITEBYTECODE") else "as run here"
        conditions = {how: here, ".pyc cached": cached}
        for env in conditions.values():
            run_child(["-c", STAGES_CHILD.format()], env=env)  # fills the bytecode cache

        bare_import = import_seconds("asyncio", here)
        figure("import asyncio (baseline)", bare_import * 1000, "ms")
        for name, env in conditions.items():
            ours_import = import_seconds("appliance.runtime", env)
            figure(f"import appliance.runtime ({name})", ours_import * 1000, "ms")
            ratio("  ours / baseline", ours_import, bare_import, higher_is_better=False)
            goal(f"import time, {name}", ours_import * 1000, 100.0, "ms")
        print("  where it goes (-X importtime, cumulative, one run, .pyc cached):")
        found = import_breakdown("appliance.runtime", cached)
        for module, us in sorted(found.items(), key=lambda kv: -kv[1]):
            figure(f"  {module}", us / 1000, "ms")

        print("  RSS after each step (one run, .pyc cached):")
        stages = run_child(["-c", STAGES_CHILD.format()], env=cached)
        previous = 0
        for step, value in stages.items():
            note = f"(+{(value - previous) / 2**20:.2f})" if previous else ""
            figure(f"  {step}", value / 2**20, "MiB", note=note)
            previous = value

        bare_rss, bare_peak = rss(BARE_CHILD, here)
        figure("bare python + asyncio, idle 1 s (baseline)", bare_rss / 2**20, "MiB")
        figure("  its peak RSS (VmHWM)", bare_peak / 2**20, "MiB")
        with tempfile.TemporaryDirectory(prefix="qey-bench-floor-") as floor_dir:
            floor_rss, _ = rss(FLOOR_CHILD, cached, data_dir=floor_dir)
        figure("floor: + msgspec, sqlite3 (WAL); none of ours", floor_rss / 2**20, "MiB")
        figure("  left under the goal for all of ours", (25e6 - floor_rss) / 2**20, "MiB")
        for name, env in conditions.items():
            first_rss, first_peak = started(env, first=True)
            figure(f"first start, 4 agents, idle 1 s ({name})", first_rss / 2**20, "MiB")
            figure("  its peak RSS (VmHWM)", first_peak / 2**20, "MiB")
            ours_rss, ours_peak = started(env, first=False)
            figure(f"later start, 4 agents, idle 1 s ({name})", ours_rss / 2**20, "MiB")
            figure("  its peak RSS (VmHWM)", ours_peak / 2**20, "MiB")
            figure("  above the baseline", (ours_rss - bare_rss) / 2**20, "MiB")
            ratio("  ours / baseline", ours_rss, bare_rss, higher_is_better=False)
            goal(f"idle RSS, {name}", ours_rss / 1e6, 25.0, "MB", note="(MB = 10^6 bytes)")


if __name__ == "__main__":
    main()
