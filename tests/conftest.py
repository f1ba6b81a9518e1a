from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from appliance.events import JobContext
from appliance.runtime import FakeClock, Runtime, Store, running
from tests.support import Counter, Echo, Parent


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
