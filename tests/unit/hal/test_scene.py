"""The display's scene and its compact encoding: runtime records in, lines and ids out,
decoded back by the display's screen exactly as they went in."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.events import (
    Envelope,
    Event,
    HandlerCrashed,
    JobContext,
    JobSubmitted,
    Started,
    TaskRef,
    TaskSpawned,
    TaskStatusChanged,
    TopicRef,
)
from appliance.hal.display.messages import MessageReader, Status, encode_message
from appliance.hal.display.scene import Scene
from appliance.hal.display.screen import Screen
from appliance.hal.display.session import WireSession

pytestmark = pytest.mark.unit

JOB = JobContext("job-1", "cmd-1")


def env(event: Event, target: Any = None, sender: str | None = None) -> Envelope[Event]:
    return Envelope(event=event, job=JOB, target=target or TopicRef("runtime"), sender=sender)


def spawn(task_id: str, agent: str, parent: str | None = None) -> Envelope[Event]:
    return env(
        TaskSpawned(
            job_id=JOB.job_id,
            task_id=task_id,
            agent_type=agent,
            objective="o",
            parent_task_id=parent,
        )
    )


def ended(task_id: str, status: str) -> Envelope[Event]:
    return env(
        TaskStatusChanged(job_id=JOB.job_id, task_id=task_id, agent_type="a", status=status)  # type: ignore[arg-type]
    )


@pytest.fixture
def scene() -> Scene:
    s = Scene(linger_s=2.0)
    s.note(env(JobSubmitted(job_id=JOB.job_id, command_id="c", command="analyze posture")), 0)
    s.note(spawn("root", "coordinator"), 0)
    s.note(spawn("c1", "data_collector", "root"), 0)
    s.note(spawn("a1", "analyzer", "c1"), 0)
    s.note(spawn("c2", "data_collector", "root"), 0)
    return s


def test_lines_come_in_tree_order_children_below_parents(scene: Scene) -> None:
    snap = scene.snapshot(0.0, 16)
    assert [(v.task_id, v.parent) for v in snap.lines] == [
        ("root", None),
        ("c1", "root"),
        ("a1", "c1"),
        ("c2", "root"),
    ]
    assert snap.jobs["job-1"].command == "analyze posture" and snap.total == 4


def test_delivered_events_mark_their_target_busy_for_one_frame(scene: Scene) -> None:
    scene.snapshot(0.0, 16)
    scene.note(env(Started(objective="x"), TaskRef("data_collector", "c2")), 0.1)
    scene.note(env(Started(objective="y"), TaskRef("data_collector", "c2")), 0.1)
    c2 = scene.snapshot(0.1, 16).lines[-1]
    assert (c2.status, c2.event, c2.hits) == (Status.HANDLING, "task.start", 2)
    c2 = scene.snapshot(0.2, 16).lines[-1]
    assert (c2.status, c2.hits) == (Status.IDLE, 0)


def test_a_published_event_counts_for_its_sender(scene: Scene) -> None:
    scene.snapshot(0.0, 16)
    scene.note(env(Started(objective="p"), TopicRef("progress"), sender="c1"), 0.1)
    assert scene.snapshot(0.1, 16).lines[1].hits == 1


def test_ended_tasks_linger_then_go_and_take_their_job_along(scene: Scene) -> None:
    for task in ("a1", "c1", "c2", "root"):
        scene.note(ended(task, "done"), 1.0)
    scene.note(ended("c2", "failed"), 1.0)
    snap = scene.snapshot(2.9, 16)
    assert {v.task_id: v.status for v in snap.lines}["c2"] == Status.FAILED
    assert scene.snapshot(3.0, 16).lines == [] and scene.snapshot(3.0, 16).jobs == {}


def test_a_crash_shows_then_the_instance_goes_back_to_idle(scene: Scene) -> None:
    crash = HandlerCrashed(
        job_id=JOB.job_id,
        task_id="c1",
        agent_type="data_collector",
        event_kind="scan.requested",
        error_type="OSError",
        message="boom",
    )
    scene.note(env(crash), 1.0)
    assert scene.snapshot(1.5, 16).lines[1].status == Status.CRASHED
    assert scene.snapshot(3.0, 16).lines[1].status == Status.IDLE


def test_with_too_few_lines_the_active_ones_win(scene: Scene) -> None:
    scene.snapshot(0.0, 16)
    scene.note(env(Started(objective="x"), TaskRef("analyzer", "a1")), 0.5)
    snap = scene.snapshot(0.5, 1)
    assert [v.task_id for v in snap.lines] == ["a1"] and snap.total == 4
    assert snap.lines[0].parent is None  # its parent is not shown: it stands as a root


def test_names_go_once_and_the_screen_decodes_the_same_tree(scene: Scene) -> None:
    session, screen, reader = WireSession(), Screen(), MessageReader()
    names, frame = session.encode(scene.snapshot(0.0, 16), 0)
    assert names is not None and names.reset
    assert sorted(n for _, n in names.agents) == ["analyzer", "coordinator", "data_collector"]
    again, _ = session.encode(scene.snapshot(0.1, 16), 100)
    assert again is None  # nothing new to name
    for seq, message in reader.feed_numbered(encode_message(names, 1) + encode_message(frame, 2)):
        screen.apply(message, seq)
    shown = [(s.depth, s.agent, s.event, s.job) for s in screen.lines()]
    assert shown == [
        (0, "coordinator", "task.spawned", "analyze posture"),
        (1, "data_collector", "task.spawned", "analyze posture"),
        (2, "analyzer", "task.spawned", "analyze posture"),
        (1, "data_collector", "task.spawned", "analyze posture"),
    ]


def test_a_frame_with_names_the_display_lacks_is_nacked(scene: Scene) -> None:
    session, screen = WireSession(), Screen()
    _names, frame = session.encode(scene.snapshot(0.0, 16), 0)  # the Names never arrive
    reply = screen.apply(frame, 5)
    assert type(reply).__name__ == "Nack" and screen.frame is None and screen.unknown == 1
    session.reset()
    names, frame = session.encode(scene.snapshot(0.1, 16), 100)
    assert names is not None and names.reset
    screen.apply(names, 6)
    assert type(screen.apply(frame, 7)).__name__ == "Ack"


def test_slots_of_gone_tasks_are_forgotten(scene: Scene) -> None:
    session = WireSession()
    session.encode(scene.snapshot(0.0, 16), 0)
    for task in ("a1", "c1", "c2", "root"):
        scene.note(ended(task, "done"), 0.0)
    scene.note(spawn("new", "executor"), 5.0)
    _names, frame = session.encode(scene.snapshot(5.0, 16), 5000)
    assert len(frame.lines) == 1 and frame.lines[0].parent == 0
