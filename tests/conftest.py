from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from appliance.events import JobContext
from appliance.runtime import FakeClock, Runtime, Store, running
from tests.support import Counter, Echo, Parent

LAYERS = ("unit", "property", "integration", "browser", "qemu", "qemu_arm64")
BY_DIRECTORY = {
    "unit": "unit",
    "web": "unit",
    "property": "property",
    "integration": "integration",
    "browser": "browser",
}
"""The marker a test in tests/<directory>/ gets when its module names none of LAYERS, so
``-m unit`` selects every unit test whether or not its module remembered to say so."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        if any(item.get_closest_marker(layer) for layer in LAYERS):
            continue
        parts = item.path.relative_to(tests).parts if item.path.is_relative_to(tests) else ()
        layer = BY_DIRECTORY.get(parts[0]) if len(parts) > 1 else None
        if layer is not None:
            item.add_marker(layer)


# CI gates on a fixed set of generated examples, so a red run is the code's doing, not the
# dice's (nor the machine's load: no per-example deadline, no too-slow check); locally (no
# HYPOTHESIS_PROFILE) every run searches new ones.
hypothesis_settings.register_profile(
    "ci",
    derandomize=True,
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "qey.db")
    yield s
    s.close()


@pytest.fixture
async def runtime(store: Store) -> AsyncIterator[Runtime]:
    rt = Runtime(store)
    rt.register(Counter)
    rt.register(Echo)
    rt.register(Parent)
    async with running(rt):
        yield rt


@pytest.fixture
def job() -> JobContext:
    return JobContext("job-test", "cmd-test")
