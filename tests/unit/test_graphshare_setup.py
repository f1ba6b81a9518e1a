"""A fleet device's graph share sets its stream up even when the broker is slow to answer.

The broker's edge is faked (a client whose JetStream answers as the test says); the graph
share and the runtime under it are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import ServiceUnavailableError

from appliance.fleet import graphshare
from appliance.fleet.graphshare import GraphShare
from appliance.runtime import Runtime, Store
from tests.support import until


class SlowJetStream:
    """Times out ``slow`` times, then makes the stream; or refuses it with ``refusal``."""

    def __init__(self, slow: int = 0, refusal: Exception | None = None) -> None:
        self.slow = slow
        self.refusal = refusal
        self.tries = 0
        self.subscribed = False

    async def add_stream(self, config: Any) -> None:
        self.tries += 1
        if self.refusal is not None:
            raise self.refusal
        if self.tries <= self.slow:
            raise NatsTimeout

    async def subscribe(self, subject: str, **_options: Any) -> None:
        self.subscribed = True


class Client:
    def __init__(self, js: SlowJetStream) -> None:
        self._js = js

    def jetstream(self) -> SlowJetStream:
        return self._js


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    store = Store(tmp_path / "qey.db")
    try:
        yield Runtime(store)
    finally:
        store.close()


async def test_a_broker_too_slow_to_answer_is_asked_again_until_the_stream_is_set_up(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(graphshare, "SETUP_RETRY_S", (0.01,))
    js = SlowJetStream(slow=2)
    share = GraphShare(runtime, "alpha")
    task = asyncio.create_task(share.run(Client(js)))  # type: ignore[arg-type]
    try:
        await until(lambda: share.available, timeout=5)
        assert js.tries == 3 and js.subscribed and share.status().available
        assert caplog.text.count("not set up yet") == 1  # said once, not at every try
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_broker_without_streams_is_said_once_and_not_asked_again(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(graphshare, "SETUP_RETRY_S", (0.01,))
    js = SlowJetStream(refusal=ServiceUnavailableError(code=503, description="no JetStream"))
    share = GraphShare(runtime, "alpha")
    async with asyncio.timeout(5):
        await share.run(Client(js))  # type: ignore[arg-type]
    assert js.tries == 1 and not js.subscribed and not share.available
    assert "keeps no stream" in caplog.text
