from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.runtime import FakeClock, KnowledgeStore, Store

pytestmark = pytest.mark.unit


async def test_concurrent_updates_lose_nothing(store: Store, clock: FakeClock) -> None:
    knowledge = KnowledgeStore(store, clock)

    async def bump(n: int) -> None:
        for _ in range(n):
            knowledge.update("hits", lambda v: v + 1, type=int, default=0)
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as tg:
        for _ in range(20):
            tg.create_task(bump(50))
    assert knowledge.get("hits", int, 0) == 1000
    assert knowledge.version("hits") == 1000


async def test_a_failing_update_changes_nothing(store: Store, clock: FakeClock) -> None:
    knowledge = KnowledgeStore(store, clock)
    knowledge.update("hosts", lambda v: [*v, "a"], type=list[str], default=[])

    def broken(v: list[str]) -> list[str]:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        knowledge.update("hosts", broken, type=list[str], default=[])
    assert knowledge.get("hosts", list[str], []) == ["a"]
    assert knowledge.version("hosts") == 1


async def test_knowledge_is_persisted(tmp_path: Path, clock: FakeClock) -> None:
    store = Store(tmp_path / "k.db")
    KnowledgeStore(store, clock).update("x", lambda v: {**v, "k": 1}, type=dict, default={})
    await store.flush()
    store.close()
    again = Store(tmp_path / "k.db")
    try:
        assert KnowledgeStore(again, clock).get("x", dict, {}) == {"k": 1}
    finally:
        again.close()
