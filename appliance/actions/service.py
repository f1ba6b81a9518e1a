"""Actions from request to effect: nothing destructive runs on a guess.

``request`` checks the action against the scope (and a block against the allow list), then
either applies it at once (not destructive: allow-list, notify) or files it as *pending* an
admin's approval with a deadline (block, quarantine, revoke). ``approve`` applies a pending
action, ``reject`` and the deadline close it without effect, ``undo`` takes an applied firewall
action back. Every step is one conditional update of the action's row, so two people (or a
person and the deadline) cannot both decide it, and each is recorded in the graph against the
task that asked (``action.decided``). An identical action already pending or applied is
returned, not repeated: a retried or replayed request blocks once.

The firewall is made whole from the applied actions each time (``firewall.entries``), so
``restore`` after a restart and a repeated load give the same table.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from appliance.actions import firewall
from appliance.actions.model import FIREWALL_KINDS, AnyAction, Block, Notify, Quarantine, Ticket
from appliance.actions.store import ActionLog, ActionRecord, Approval, State
from appliance.actions.webhook import Webhook, deliver, render
from appliance.errors import ActionFailed, ActionNotAllowed
from appliance.events import ActionDecided
from appliance.runtime import Clock, Store
from appliance.scope import Scope

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_S = 3600.0  # an approval not given within the hour means: not done
DEFAULT_TICKET = '{"title": "{title}", "body": "{body}", "host": "{host}", "job": "{job}"}'


class Actions:
    """The executor's hands, and the approvals that hold back the destructive ones."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        scope: Scope,
        *,
        record: Callable[[ActionDecided], None],
        load_firewall: Callable[[firewall.Entries], None] = firewall.load,
        deadline_s: float = DEFAULT_DEADLINE_S,
        webhook: Webhook | None = None,
        tickets: Webhook | None = None,
        ticket_template: str = DEFAULT_TICKET,
    ) -> None:
        self.log = ActionLog(store)
        self._clock = clock
        self._scope = scope
        self._record = record
        self._load_firewall = load_firewall
        self._deadline_s = deadline_s
        self._webhook = webhook
        self._tickets = tickets
        self._ticket_template = ticket_template
        self._firewall_lock = threading.Lock()  # one nft transaction at a time, in order
        self.show_on_display: Callable[[str], None] | None = None  # the display, once it runs

    def records(self, states: tuple[State, ...] = ()) -> list[ActionRecord]:
        return self.log.records(states)

    def get(self, action_id: str) -> ActionRecord:
        return self.log.get(action_id)

    # -- asking -----------------------------------------------------------------------------

    def request(
        self,
        action: AnyAction,
        *,
        job_id: str,
        task_id: str,
        agent_type: str = "executor",
        approval: Approval = "admin",
    ) -> ActionRecord:
        """File ``action`` for the task that asks: applied now when it changes nothing a
        person must vouch for, pending an approval otherwise (``approval``: an admin's, or a
        vote the asking task runs and reports with ``approve``/``reject``). OutOfScope for a host
        outside the scope, ActionNotAllowed for a block of an allow-listed host."""
        if action.host is not None:
            self._scope.check(action.host)
        existing = self.log.same(action)
        if existing is not None:
            return existing
        if isinstance(action, Block | Quarantine) and action.host in self.entries().allowed:
            raise ActionNotAllowed(
                f"{action.host} is on the allow list: revoke its entry before you "
                f"{action.describe().split()[0]} it"
            )
        now = self._clock.now()
        approval = approval if action.destructive else "none"
        record = self.log.add(
            action,
            state="pending" if action.destructive else "applied",
            approval=approval,
            job_id=job_id,
            task_id=task_id,
            agent_type=agent_type,
            now=now,
            deadline=now + self._deadline_s if action.destructive else None,
            decided_by="" if action.destructive else "policy: not destructive",
        )
        if action.destructive:
            waits = "a vote of analyzers" if approval == "vote" else "an admin's approval"
            self._note(record, "pending", by="", detail=f"waiting for {waits}")
            self._show_pending()
            return record
        return self._carry_out(record, by="policy: not destructive")

    # -- deciding ---------------------------------------------------------------------------

    def approve(self, action_id: str, *, by: str = "admin") -> ActionRecord:
        record = self.log.get(action_id)
        self._claim(record, "pending", "applied", by=by)
        return self._carry_out(self.log.get(action_id), by=by)

    def reject(self, action_id: str, *, by: str = "admin", why: str = "") -> ActionRecord:
        record = self.log.get(action_id)
        detail = why or f"rejected by {by}"
        self._claim(record, "pending", "rejected", by=by, detail=detail)
        return self._noted(action_id, "rejected", by=by, detail=detail)

    def expire(self) -> list[ActionRecord]:
        """Close every pending action whose deadline passed: not done, and recorded so."""
        now = self._clock.now()
        closed = []
        for record in self.log.overdue(now):
            detail = "no approval before the deadline: not done"
            if self.log.move(
                record.id, expected="pending", to="expired", now=now, by="deadline", detail=detail
            ):
                closed.append(self._noted(record.id, "expired", by="deadline", detail=detail))
        return closed

    def undo(self, action_id: str, *, by: str = "admin") -> ActionRecord:
        """Take back an applied firewall action (a block, quarantine, allow-list entry or
        revoke); a notification cannot be taken back."""
        record = self.log.get(action_id)
        if not isinstance(record.action, FIREWALL_KINDS):
            raise ActionNotAllowed(f"{record.id} ({record.what}) cannot be undone")
        self._claim(record, "applied", "undone", by=by, detail=f"undone by {by}")
        try:
            self.reload()
        except ActionFailed as err:  # the row says undone; the table says otherwise: put back
            self.log.move(
                record.id,
                expected="undone",
                to="applied",
                now=self._clock.now(),
                by=record.decided_by,
                detail=record.detail,
            )
            raise err
        return self._noted(action_id, "undone", by=by, detail=f"undone by {by}")

    # -- the firewall -------------------------------------------------------------------------

    def entries(self) -> firewall.Entries:
        applied = [r.action for r in self.log.records(("applied",))]
        return firewall.entries(a for a in applied if isinstance(a, FIREWALL_KINDS))

    def reload(self) -> firewall.Entries:
        """Load the firewall the applied actions add up to."""
        with self._firewall_lock:
            current = self.entries()
            self._load_firewall(current)
            return current

    def restore(self) -> None:
        """At start: the firewall as the applied actions left it (a reboot empties it)."""
        if any(isinstance(r.action, FIREWALL_KINDS) for r in self.log.records(("applied",))):
            self.reload()

    # -- inside ---------------------------------------------------------------------------

    def _claim(
        self, record: ActionRecord, expected: State, to: State, *, by: str, detail: str = ""
    ) -> None:
        if not self.log.move(
            record.id, expected=expected, to=to, now=self._clock.now(), by=by, detail=detail
        ):
            current = self.log.get(record.id)
            raise ActionNotAllowed(
                f"{record.id} ({record.what}) is {current.state}, not {expected}"
            )

    def _carry_out(self, record: ActionRecord, *, by: str) -> ActionRecord:
        """Do what its row already says is applied; a failure is recorded on the action
        (state failed, with why) and raised."""
        try:
            if isinstance(record.action, FIREWALL_KINDS):
                self.reload()
            elif isinstance(record.action, Notify):
                self._notify(record.action)
            elif isinstance(record.action, Ticket):
                self._ticket(record.action, record)
        except ActionFailed as err:
            self.log.move(
                record.id,
                expected="applied",
                to="failed",
                now=self._clock.now(),
                by=by,
                detail=str(err),
            )
            self._noted(record.id, "failed", by=by, detail=str(err))
            raise
        return self._noted(record.id, "applied", by=by)

    def _notify(self, action: Notify) -> None:
        if "journal" in action.channels:
            log.warning("qey notice: %s", action.message)
        if "display" in action.channels:
            self._show(action.message)
        if "webhook" in action.channels and self._webhook is not None:
            deliver(self._webhook, {"notice": action.message, "reason": action.reason})

    def _ticket(self, action: Ticket, record: ActionRecord) -> None:
        if self._tickets is None:
            raise ActionFailed("no ticket_url is configured: set it in config.toml")
        values = {
            "title": action.title,
            "body": action.body,
            "host": action.about,
            "job": record.job_id,
            "action": record.id,
        }
        deliver(self._tickets, render(self._ticket_template, values))

    def _show(self, text: str) -> None:
        if self.show_on_display is not None:
            self.show_on_display(text)

    def _show_pending(self) -> None:
        """The display's notice line: the oldest action waiting for an approval, and how many
        more; cleared when none waits."""
        waiting = self.log.records(("pending",))
        if not waiting:
            self._show("")
            return
        more = f" (+{len(waiting) - 1})" if len(waiting) > 1 else ""
        self._show(f"approve? {waiting[0].what}{more}")

    def _noted(self, action_id: str, state: State, *, by: str, detail: str = "") -> ActionRecord:
        record = self.log.get(action_id)
        self._note(record, state, by=by, detail=detail)
        if record.destructive:
            self._show_pending()
        return record

    def _note(self, record: ActionRecord, state: State, *, by: str, detail: str) -> None:
        self._record(
            ActionDecided(
                job_id=record.job_id,
                task_id=record.task_id,
                agent_type=record.agent_type,
                action_id=record.id,
                action=record.what,
                state=state,
                decided_by=by,
                detail=detail,
                at=self._clock.now(),
            )
        )


async def expire_approvals(actions: Actions, clock: Clock, every_s: float = 1.0) -> None:
    """Close overdue approvals as their deadlines pass, until cancelled."""
    while True:
        try:
            await asyncio.to_thread(actions.expire)
        except Exception:  # a busy store: try again next time, never stop watching
            log.exception("approvals: could not close the overdue ones")
        await clock.sleep(every_s)
