"""``qey approvals``, ``qey actions`` and ``qey undo``: the actions from a shell, through the
running appliance's control socket (it holds the firewall and the deadlines: with no
appliance running there is nothing to approve)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import msgspec

from appliance.actions.store import ActionRecord
from appliance.columns import columns
from appliance.errors import ApplianceError
from appliance.settings import Settings

VERBS = ("list", "approve", "reject", "undo")


def render(records: Sequence[ActionRecord], *, empty: str) -> str:
    """One line per action: id, state, asked, decided by, job, what."""
    if not records:
        return empty
    rows = [("ID", "STATE", "ASKED", "DECIDED BY / DUE", "JOB", "WHAT")]
    for r in records:
        decided = r.decided_by or f"due {_local(r.deadline)}"
        what = r.what + (f" ({r.detail})" if r.detail else "")
        rows.append((r.id, r.state, _local(r.requested_at), decided, r.job_id, what))
    return columns(rows)


def _local(at: float | None) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M") if at is not None else "-"


def run(
    settings: Settings, verb: str, action_id: str | None, *, pending_only: bool, as_json: bool
) -> int:
    """Do ``verb`` and print the result; errors are ApplianceError (the CLI's one line)."""
    if verb not in VERBS:
        raise ValueError(f"unknown action {verb!r}: use one of {', '.join(VERBS)}")
    if verb != "list" and not action_id:
        raise ValueError(f"'{verb}' needs an action id (see 'qey approvals' or 'qey actions')")
    result = asyncio.run(_through_appliance(settings, verb, action_id, pending_only))
    if as_json:
        print(msgspec.json.encode(result).decode())
    elif isinstance(result, list):
        empty = "nothing waits for an approval" if pending_only else "no actions yet"
        print(render(result, empty=empty))
    else:
        print(render([result], empty=""))
    return 0


async def _through_appliance(
    settings: Settings, verb: str, action_id: str | None, pending_only: bool
) -> list[ActionRecord] | ActionRecord:
    from appliance.client import ControlClient, NotRunning

    try:
        async with ControlClient(settings.control_socket) as client:
            if verb == "list":
                return await client.actions(("pending",) if pending_only else ())
            assert action_id is not None
            return await client.decide_action(action_id, verb)
    except NotRunning as err:
        raise ApplianceError(
            f"the appliance is not running ({err}): it keeps the approvals and the firewall"
        ) from None
