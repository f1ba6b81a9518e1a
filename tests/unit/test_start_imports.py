"""What a start loads: the runtime with the built-in agents registered leaves out the modules
only a later step needs (issue 15: a started runtime in at most 25 MB), so an import added at
the top of a module on that path shows up here rather than in the idle benchmark. A later
start, as every boot after the first: the first makes the schema with sqlite-utils."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.runtime import Store
from appliance.settings import Settings

pytestmark = pytest.mark.unit

# each imported where it is used: ids and tokens (secrets pulls hashlib, hmac, random), nft's
# path (shutil pulls bz2, lzma), a monthly cadence, the rules file (importlib.resources pulls
# zipfile, tempfile), the backoff's jitter, the scan's descriptor limit
DEFERRED = (
    "secrets",
    "hashlib",
    "random",
    "shutil",
    "calendar",
    "importlib.resources",
    "zipfile",
    "resource",
)

CHILD = """
import asyncio, json, sys
from pathlib import Path
from appliance.agents import register_builtin
from appliance.runtime import Runtime, Store, running
from appliance.settings import Settings

async def start(settings):
    store = Store(settings.db_path)
    try:
        runtime = Runtime(store)
        register_builtin(runtime, settings)
        async with running(runtime):
            await runtime.commit()
    finally:
        store.close()

asyncio.run(start(Settings(data_dir=Path(sys.argv[2]))))
print(json.dumps(sorted(set(sys.modules) & set(json.loads(sys.argv[1])))))
"""


def test_a_start_does_not_load_what_only_later_steps_need(tmp_path: Path) -> None:
    Store(Settings(data_dir=tmp_path).db_path).close()  # the first start's schema: made
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(DEFERRED), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == []
