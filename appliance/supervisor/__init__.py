"""Supervision: error policy, restart intensity, health, pool scaling, consensus, systemd."""

from appliance.supervisor.consensus import ConsensusTracker, VoteOpened, open_vote
from appliance.supervisor.policy import Backoff, classify
from appliance.supervisor.supervisor import ScalingPolicy, Supervisor
from appliance.supervisor.systemd import SystemdNotifier

__all__ = [
    "Backoff",
    "ConsensusTracker",
    "ScalingPolicy",
    "Supervisor",
    "SystemdNotifier",
    "VoteOpened",
    "classify",
    "open_vote",
]
