from __future__ import annotations

import pytest

from appliance.events import ConsensusFailed, ConsensusReached, JobContext, TaskRef, VoteCast
from appliance.runtime import FakeClock, Runtime
from appliance.supervisor import Supervisor, open_vote
from appliance.supervisor.consensus import VoteState

pytestmark = pytest.mark.unit

Supervised = tuple[Runtime, Supervisor]


def _voters(runtime: Runtime, job: JobContext, *objectives: str) -> list[TaskRef]:
    return [runtime.spawn("voter", job, objective) for objective in objectives]


async def test_a_vote_reaches_consensus_when_the_quorum_accepts(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    voters = _voters(runtime, job, "yes", "yes", "no")
    with runtime.watch(kinds=["consensus.reached"]) as watch:
        tracker = open_vote(runtime, job, voters, "rescan 127.0.0.1", quorum=2, deadline_s=5)
        outcome = (await runtime.wait_task(tracker)).result
        published = (await watch.next()).event
    assert isinstance(outcome, ConsensusReached) and outcome.accepted
    assert published == outcome
    assert sum(outcome.votes.values()) >= 2


async def test_a_vote_fails_as_soon_as_the_quorum_is_out_of_reach(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    voters = _voters(runtime, job, "no", "no", "yes")
    tracker = open_vote(runtime, job, voters, "block the port", quorum=2, deadline_s=60)
    outcome = (await runtime.wait_task(tracker)).result
    assert isinstance(outcome, ConsensusFailed)
    assert outcome.reason.startswith("quorum impossible")


async def test_a_vote_fails_at_its_deadline_when_voters_stay_silent(
    supervised: Supervised, fake_clock: FakeClock, job: JobContext
) -> None:
    runtime, _ = supervised
    voters = _voters(runtime, job, "yes", "silent", "silent")
    tracker = open_vote(runtime, job, voters, "upgrade", quorum=2, deadline_s=30)
    await fake_clock.advance(29)
    assert runtime.instances("consensus")[0].status == "running"
    await fake_clock.advance(2)
    outcome = (await runtime.wait_task(tracker)).result
    assert isinstance(outcome, ConsensusFailed)
    assert outcome.reason.startswith("deadline") and len(outcome.votes) == 1


async def test_duplicate_late_and_stranger_votes_are_ignored_and_recorded(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    voters = _voters(runtime, job, "yes twice", "no", "no")
    stranger = runtime.spawn("voter", job, "yes")
    tracker = open_vote(runtime, job, voters, "rotate keys", quorum=2, deadline_s=5)
    outcome = (await runtime.wait_task(tracker)).result
    assert isinstance(outcome, ConsensusFailed)
    assert outcome.votes == {
        voters[0].task_id: True,
        voters[1].task_id: False,
        voters[2].task_id: False,
    }
    late = VoteCast(vote_id=outcome.vote_id, voter=stranger.task_id, accept=True)
    await runtime.request(tracker, late, job=job)
    state = runtime.state_of(tracker)
    assert isinstance(state, VoteState)
    assert [(i.voter, i.why) for i in state.ignored] == [
        (voters[0].task_id, "duplicate"),
        (stranger.task_id, "late: the vote was decided"),
    ]
    stored = await runtime.store.read(
        lambda db: db.execute(
            "SELECT state FROM states WHERE task_id = ?", [tracker.task_id]
        ).fetchone()[0]
    )
    assert b"late: the vote was decided" in stored  # recorded, not only in memory


def test_a_quorum_larger_than_the_participants_is_refused(
    supervised: Supervised, job: JobContext
) -> None:
    runtime, _ = supervised
    with pytest.raises(ValueError, match="quorum"):
        open_vote(runtime, job, [], "x", quorum=1, deadline_s=1)
