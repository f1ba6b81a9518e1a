"""Chaos: crashes, kills and hangs while 50,000 events flow through 200 instances.

Seeded (``QEY_CHAOS_SEED``), so a failure reproduces. What must hold at the end: every event
a sender had acknowledged took effect exactly once (or, if it was made to fail, failed exactly
once and left no trace in the state), every instance is back with its state, and the graph
recorded every restart.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from typing import Literal

import msgspec
import pytest

from appliance.events import Event, JobContext
from appliance.runtime import Agent, Context, Runtime, Store, running
from appliance.supervisor import Supervisor

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("QEY_CHAOS_SEED", "20261128"))
EVENTS = 50_000
INSTANCES = 200

Mode = Literal["ok", "suspend", "crash", "hang"]


class Work(Event, frozen=True, tag="chaos.work"):
    seq: int
    mode: Mode


class Seen(msgspec.Struct):
    seqs: list[int] = msgspec.field(default_factory=list)


class ChaosAgent(Agent):
    """Changes its state only after its last await, as handlers must for exactly-once."""

    name = "chaos"
    description = "records what it handled; crashes and hangs when told"
    State = Seen
    # Hangs are cut off here. Generous: the sender holds the loop for a while between
    # yields, and a handler waiting that long for its turn must not count as hung.
    handler_timeout_s = 1.0
    max_restarts = 10**9
    concurrency = 4
    inbox_size = 64

    async def on_work(self, event: Work, ctx: Context[Seen]) -> None:
        if event.mode == "suspend":
            await asyncio.sleep(0)
        elif event.mode == "hang":
            await asyncio.Event().wait()
        ctx.state.seqs.append(event.seq)
        if event.mode == "crash":
            raise RuntimeError(f"chaos crash {event.seq}")


async def test_chaos_loses_nothing_and_doubles_nothing(store: Store) -> None:
    rng = random.Random(SEED)
    runtime = Runtime(store)
    runtime.register(ChaosAgent)
    Supervisor(runtime, rng=random.Random(SEED))
    job = JobContext("job-chaos", "cmd-chaos")
    sent: dict[str, list[tuple[int, Mode]]] = {}
    kills: Counter[str] = Counter()
    async with asyncio.timeout(120), running(runtime, grace_s=30):
        refs = [runtime.spawn("chaos", job, f"c{i}") for i in range(INSTANCES)]
        modes: list[Mode] = ["ok", "suspend", "crash", "hang"]
        for seq in range(EVENTS):
            ref = rng.choice(refs)
            mode = rng.choices(modes, weights=[80, 19.5, 0.4, 0.1])[0]
            await runtime.send(ref, Work(seq=seq, mode=mode), job=job)
            sent.setdefault(ref.task_id, []).append((seq, mode))  # acknowledged
            if rng.random() < 1 / 250:  # kill an instance in the middle of its work
                victim = rng.choice(refs)
                runtime.restart(victim, "chaos kill")
                kills[victim.task_id] += 1
        await runtime.wait_idle()
        await store.flush()

        failures = Counter(m for pairs in sent.values() for _, m in pairs if m in ("crash", "hang"))
        restarts = await store.read(
            lambda db: Counter(
                r["task_id"]
                for r in db.query(
                    "SELECT task_id FROM journal WHERE kind = ?", ["instance.restarted"]
                )
            )
        )
        crashed = await store.read(
            lambda db: db.execute(
                "SELECT count(*) FROM journal WHERE kind = 'handler.crashed'"
            ).fetchone()[0]
        )
        for ref in refs:
            pairs = sent.get(ref.task_id, [])
            want = sorted(seq for seq, mode in pairs if mode in ("ok", "suspend"))
            state = runtime.state_of(ref, job.job_id)
            assert isinstance(state, Seen)
            got = sorted(state.seqs)
            assert got == want, (
                f"seed {SEED}: {ref}: doubled {sorted((Counter(got) - Counter(want)).elements())}, "
                f"lost {sorted((Counter(want) - Counter(got)).elements())}; "
                f"kills {kills[ref.task_id]}"
            )
            died = sum(1 for _, mode in pairs if mode in ("crash", "hang"))
            expected_restarts = died + kills[ref.task_id]
            assert restarts[ref.task_id] == expected_restarts, f"seed {SEED}: {ref}"
            [info] = [i for i in runtime.instances("chaos") if i.ref == ref]
            assert info.generation == 1 + expected_restarts
        assert crashed == sum(failures.values()), f"seed {SEED}"
        assert sum(kills.values()) > 100 and failures["hang"] > 10  # the chaos really happened
