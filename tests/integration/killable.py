"""A child process for the kill test: a job whose state ticks up, commit after commit.

Run as ``python -m tests.integration.killable DB``. It prints ``integrity <result>`` on
opening the store, ``start count=N`` when the ticking task starts (fresh or resumed), and
``done count=N`` if it finishes (``QEY_TICK_LIMIT`` caps the count so a last run can).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import msgspec

from appliance.events import Event, Started, TaskRef
from appliance.runtime import Agent, Context, Runtime, Store, running
from appliance.supervisor import Supervisor


class Tick(Event, frozen=True, tag="kill.tick"):
    pass


class Count(msgspec.Struct):
    count: int = 0


class Ticker(Agent):
    name = "ticker"
    description = "counts up, one committed event at a time"
    State = Count
    handler_timeout_s = 3600.0

    async def on_start(self, event: Started, ctx: Context[Count]) -> int:
        limit = int(os.environ.get("QEY_TICK_LIMIT", "1000000000"))
        print(f"start count={ctx.state.count}", flush=True)
        while ctx.state.count < limit:
            await ctx.request(ctx.ref, Tick())
            await asyncio.sleep(0.0005)
        return ctx.state.count

    async def on_tick(self, event: Tick, ctx: Context[Count]) -> None:
        ctx.state.count += 1


async def main(db: Path) -> None:
    store = Store(db)
    print(
        "integrity",
        store.read_now(lambda d: d.execute("PRAGMA integrity_check").fetchone()[0]),
        flush=True,
    )
    runtime = Runtime(store)
    runtime.register(Ticker)
    Supervisor(runtime)
    try:
        async with running(runtime):  # resumes the unfinished job, if there is one
            jobs = await runtime.graph.jobs()
            if jobs:
                root = (await runtime.graph.tree(jobs[0]["job_id"])).roots[0]
                ref = TaskRef(root.agent_type, root.task_id)
            else:
                _, ref = runtime.submit("tick", "ticker")
            outcome = await runtime.wait_task(ref)
            print(f"done count={outcome.result}", flush=True)
    finally:
        store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
