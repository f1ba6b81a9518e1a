from __future__ import annotations

import pytest

from appliance.errors import UnknownJob, UnknownTask
from appliance.events import JobContext, TaskRef
from appliance.runtime import Agent, Runtime, Store, render_chain, render_tree, running

pytestmark = pytest.mark.unit


def _kind(type_name: str) -> type[Agent]:
    return type(type_name, (Agent,), {"name": type_name, "description": f"{type_name} for tests"})


SEED_TYPES = [_kind(n) for n in ("coordinator", "data_collector", "analyzer", "executor")]


async def _seed_job(runtime: Runtime) -> tuple[JobContext, dict[str, TaskRef]]:
    """The seed paper's figure, spawned for real: 3 collectors, 4 analyzers, 3 executors."""
    job, root = runtime.submit("Analyze network security posture", "coordinator")
    t: dict[str, TaskRef] = {"root": root}

    def spawn(name: str, kind: str, parent: str, objective: str = "") -> None:
        t[name] = runtime.spawn(kind, job, objective, caller=t[parent])

    spawn("A", "data_collector", "root", "Subnet 192.168.1.0/24")
    spawn("a1", "analyzer", "A")
    spawn("a2", "analyzer", "A")
    spawn("B", "data_collector", "root", "Subnet 192.168.2.0/24")
    spawn("a3", "analyzer", "B")
    spawn("e1", "executor", "a3")
    spawn("C", "data_collector", "root", "Subnet 10.0.0.0/16")
    spawn("a4", "analyzer", "C")
    spawn("e2", "executor", "a4")
    spawn("e3", "executor", "a4")
    return job, t


@pytest.fixture
async def seed_runtime(store: Store):  # type: ignore[no-untyped-def]
    runtime = Runtime(store)
    for cls in SEED_TYPES:
        runtime.register(cls)
    async with running(runtime):
        yield runtime


async def test_the_tree_prints_in_the_shape_of_the_seed_figure(seed_runtime: Runtime) -> None:
    job, t = await _seed_job(seed_runtime)
    text = render_tree(await seed_runtime.graph.tree(job.job_id))
    i = {k: v.task_id for k, v in t.items()}
    assert text == "\n".join(
        [
            'User Command: "Analyze network security posture"',
            f"  └── Coordinator ({i['root']})",
            f"      ├── DataCollector-1 ({i['A']}, parent: {i['root']}) // Subnet 192.168.1.0/24",
            f"      │   ├── Analyzer-1 ({i['a1']}, parent: {i['A']})",
            f"      │   └── Analyzer-2 ({i['a2']}, parent: {i['A']})",
            f"      ├── DataCollector-2 ({i['B']}, parent: {i['root']}) // Subnet 192.168.2.0/24",
            f"      │   └── Analyzer-3 ({i['a3']}, parent: {i['B']})",
            f"      │       └── Executor-1 ({i['e1']}, parent: {i['a3']})",
            f"      └── DataCollector-3 ({i['C']}, parent: {i['root']}) // Subnet 10.0.0.0/16",
            f"          └── Analyzer-4 ({i['a4']}, parent: {i['C']})",
            f"              ├── Executor-2 ({i['e2']}, parent: {i['a4']})",
            f"              └── Executor-3 ({i['e3']}, parent: {i['a4']})",
        ]
    )


async def test_a_chain_leads_from_any_task_back_to_the_command(seed_runtime: Runtime) -> None:
    _, t = await _seed_job(seed_runtime)
    tree, chain = await seed_runtime.graph.chain(t["e3"].task_id)
    assert [n.task_id for n in chain] == [t[k].task_id for k in ("e3", "a4", "C", "root")]
    assert render_chain(chain, tree.command).endswith(
        '← User Command: "Analyze network security posture"'
    )


async def test_an_autonomous_action_is_a_root_of_its_own(seed_runtime: Runtime) -> None:
    job, root = seed_runtime.submit("link up on eth0", "data_collector", autonomous=True)
    tree = await seed_runtime.graph.tree(job.job_id)
    assert tree.autonomous and [n.task_id for n in tree.roots] == [root.task_id]
    assert tree.roots[0].autonomous and tree.roots[0].parent_task_id is None
    assert render_tree(tree).startswith('Autonomous: "link up on eth0"')


async def test_unknown_ids_are_clear_errors(seed_runtime: Runtime) -> None:
    with pytest.raises(UnknownJob):
        await seed_runtime.graph.tree("job-nope")
    with pytest.raises(UnknownTask):
        await seed_runtime.graph.chain("task-nope")
