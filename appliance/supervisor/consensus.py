"""Votes among specific instances (independent analyzers agreeing before anything
destructive runs), run as a task of their own.

``open_vote`` spawns a ``consensus`` tracker and returns at once: nobody waits inside the
sender. The tracker asks each participant through the bus; participants answer from their
handlers with ``VoteCast``; the tracker decides as soon as the outcome is certain (quorum
met, or no longer reachable) or at the deadline. Its decision is its task's result and is
published on the ``consensus`` topic. Late, duplicate and stranger votes are ignored and
kept in the tracker's state, which is committed like any agent's.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from appliance.errors import ApplianceError
from appliance.events import (
    ConsensusFailed,
    ConsensusReached,
    Event,
    JobContext,
    TaskRef,
    TopicRef,
    VoteCast,
    VoteRequested,
)
from appliance.runtime import Agent, Context, Runtime

log = logging.getLogger(__name__)

CONSENSUS_TOPIC = TopicRef("consensus")


class VoteOpened(Event, frozen=True, tag="vote.opened"):
    vote_id: str
    proposal: str
    participants: list[TaskRef]
    quorum: int
    deadline_s: float


class IgnoredVote(msgspec.Struct, frozen=True):
    voter: str
    accept: bool
    why: str


class VoteState(msgspec.Struct):
    votes: dict[str, bool] = msgspec.field(default_factory=dict)
    ignored: list[IgnoredVote] = msgspec.field(default_factory=list)
    decided: bool = False


Outcome = ConsensusReached | ConsensusFailed


class ConsensusTracker(Agent):
    name = "consensus"
    description = "Runs a vote among specific agent instances and decides it by quorum."
    capabilities = ("vote among instances", "reach a quorum decision")
    State = VoteState
    routable = False  # opened by open_vote, never by a command
    internal = True  # nor by a client: votes come from the instances it asks
    eager = False  # opens a TaskGroup for its deadline timer at once
    handler_timeout_s = 3600.0

    def __init__(self) -> None:
        self._opened: VoteOpened | None = None
        self._voters: set[str] = set()
        self._outcome: asyncio.Future[Outcome] | None = None

    async def on_open(self, event: VoteOpened, ctx: Context[VoteState]) -> Outcome:
        self._opened = event
        self._outcome = asyncio.get_running_loop().create_future()
        request = VoteRequested(vote_id=event.vote_id, proposal=event.proposal, tracker=ctx.ref)
        for participant in event.participants:
            try:
                ctx.publish_nowait(participant, request)
                self._voters.add(participant.task_id)
            except ApplianceError as err:  # gone, or cannot vote: it counts as no vote
                log.warning("vote %s: %s cannot vote: %s", event.vote_id, participant, err)
        self._decide_if_certain(ctx)
        async with asyncio.TaskGroup() as tg:
            timer = tg.create_task(self._expire(ctx, event.deadline_s))
            outcome = await self._outcome
            timer.cancel()
        ctx.publish_nowait(CONSENSUS_TOPIC, outcome)
        return outcome

    async def _expire(self, ctx: Context[VoteState], after_s: float) -> None:
        await ctx.clock.sleep(after_s)
        self._decide(
            ctx,
            ConsensusFailed(
                vote_id=self._require().vote_id,
                proposal=self._require().proposal,
                reason=f"deadline: {after_s}s passed without a quorum",
                votes=dict(ctx.state.votes),
            ),
        )

    async def on_cast(self, event: VoteCast, ctx: Context[VoteState]) -> None:
        state = ctx.state
        opened = self._opened
        why = (
            "late: the vote was decided"
            if state.decided or opened is None
            else "not a participant"
            if event.voter not in self._voters
            else "duplicate"
            if event.voter in state.votes
            else ""
        )
        if opened is None or event.vote_id != opened.vote_id:
            why = why or "for another vote"
        if why:
            state.ignored.append(IgnoredVote(voter=event.voter, accept=event.accept, why=why))
            log.info("vote %s: ignored %s's vote (%s)", event.vote_id, event.voter, why)
            return
        state.votes[event.voter] = event.accept
        self._decide_if_certain(ctx)

    def _decide_if_certain(self, ctx: Context[VoteState]) -> None:
        opened = self._require()
        votes = ctx.state.votes
        accepts = sum(votes.values())
        undecided = len(self._voters) - len(votes)
        if accepts >= opened.quorum:
            self._decide(
                ctx,
                ConsensusReached(
                    vote_id=opened.vote_id,
                    proposal=opened.proposal,
                    accepted=True,
                    votes=dict(votes),
                ),
            )
        elif accepts + undecided < opened.quorum:
            self._decide(
                ctx,
                ConsensusFailed(
                    vote_id=opened.vote_id,
                    proposal=opened.proposal,
                    reason=f"quorum impossible: {accepts} accepted, {undecided} may still vote, "
                    f"{opened.quorum} needed",
                    votes=dict(votes),
                ),
            )

    def _decide(self, ctx: Context[VoteState], outcome: Outcome) -> None:
        if self._outcome is not None and not self._outcome.done():
            ctx.state.decided = True
            self._outcome.set_result(outcome)

    def _require(self) -> VoteOpened:
        assert self._opened is not None
        return self._opened


def open_vote(
    runtime: Runtime,
    job: JobContext,
    participants: list[TaskRef],
    proposal: str,
    *,
    quorum: int,
    deadline_s: float,
    caller: TaskRef | None = None,
) -> TaskRef:
    """Start a vote and return its tracker's ref at once; ``runtime.wait_task(ref)`` gives
    the ConsensusReached/ConsensusFailed outcome."""
    if not 0 < quorum <= len(participants):
        raise ValueError(f"quorum must be within 1..{len(participants)}, got {quorum}")
    import secrets  # here, not at the top: a start does not need it (hashlib, hmac)

    vote_id = f"vote-{secrets.token_hex(4)}"
    return runtime.spawn(
        ConsensusTracker.name,
        job,
        f"vote: {proposal}",
        caller=caller,
        start=VoteOpened(
            vote_id=vote_id,
            proposal=proposal,
            participants=participants,
            quorum=quorum,
            deadline_s=deadline_s,
        ),
    )
