"""The appliance's error tree.

Callers catch by meaning, not by library: every edge translates what a library raises into
one of these, so the web panel and the CLI can turn any of them into a clear message.
"""


class ApplianceError(Exception):
    """Root of every error the appliance raises on purpose."""


class TransientError(ApplianceError):
    """A failure worth retrying later (the supervisor retries these with backoff)."""


class UnknownAgentType(ApplianceError, LookupError):
    """No agent type of that name is registered."""


class UnknownTask(ApplianceError, LookupError):
    """No live instance has that task id."""


class ResourceError(ApplianceError):
    """Out of a resource (memory, connections, slots): scale up or shed load, not restart."""


class AgentTypeFailed(ApplianceError):
    """The agent type restarted too often and was marked failed; reset it to use it again."""


class UnknownJob(ApplianceError, LookupError):
    """No job of that id was ever recorded."""


class UnknownDevice(ApplianceError, LookupError):
    """No scan has seen a device at that address."""


class EventNotAccepted(ApplianceError, TypeError):
    """The target's agent type declares no handler for the event's type."""


class InboxFull(TransientError):
    """The target instance's bounded inbox has no room; try later or await ``send``."""


class BadEvent(ApplianceError, ValueError):
    """Bytes at an edge did not decode to a known, well-formed event."""


class HandlerFailed(ApplianceError):
    """A handler raised while serving a request; the requester sees this."""


class RequestTimeout(TransientError, TimeoutError):
    """A request got no reply before its deadline."""


class RuntimeStopped(ApplianceError):
    """The runtime is not running, so nothing can be delivered."""


class OutOfScope(ApplianceError, PermissionError):
    """A scan or action targeted an address outside the configured scope."""


class BadCommand(ApplianceError, ValueError):
    """A command could not be understood."""


class UnknownSchedule(ApplianceError, LookupError):
    """No schedule has that id (it may have been deleted)."""


class InternalAgentType(BadCommand):
    """The agent type is one the appliance runs for itself (the network watcher, a vote
    tracker): no command, pool size or event from outside starts one."""


class EventNotAllowed(ApplianceError, PermissionError):
    """A client sent an event only the appliance itself sends (a hardware event, a vote)."""


class StoreUnavailable(TransientError):
    """The SQLite store could not be written (disk full, I/O error); nothing was dropped."""


class ModelUnavailable(ApplianceError):
    """The router's model files are missing, corrupt or not the ones recorded."""


class TelemetryNotOff(ApplianceError):
    """onnxruntime was imported before the appliance switched its telemetry off."""


class ProviderUnavailable(ApplianceError):
    """Strict mode: the board's first execution provider (its NPU) cannot run the router."""


class NoConfidentMatch(BadCommand):
    """The router found no agent type confident enough for a command; it names candidates."""

    def __init__(
        self,
        command: str,
        candidates: list[tuple[str, float]],
        *,
        understood: list[str] | None = None,
        not_understood: list[str] | None = None,
        can_do: list[str] | None = None,
    ) -> None:
        self.command = command
        self.candidates = candidates
        self.understood = understood or []  # the planner's steps it could place
        self.not_understood = not_understood or []  # the parts no agent type takes
        names = ", ".join(f"{name} ({score:.2f})" for name, score in candidates) or "none"
        said = ""
        if self.understood:
            said += f" Understood: {'; '.join(self.understood)}."
        if self.not_understood and self.not_understood != [command]:
            said += f" Not understood: {'; '.join(repr(p) for p in self.not_understood)}."
        if can_do:
            said += f" The closest things it can do: {'; '.join(can_do)}."
        super().__init__(
            f"no agent type is a confident match for {command!r}; closest: {names}.{said} "
            "Rephrase it, or choose the agent type yourself."
        )


class Refused(ApplianceError):
    """An error the appliance's API answered with, as a client receives it: its kind (the
    error's class name, e.g. "NoConfidentMatch") kept beside the message, so a client can
    add what its own user does about it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ActionFailed(ApplianceError):
    """An approved action could not be carried out (the firewall refused it); recorded so."""


class UnknownAction(ApplianceError, LookupError):
    """No action or approval has that id."""


class ActionNotAllowed(ApplianceError, PermissionError):
    """An action refused before anything ran: a host on the allow list, an approval already
    decided, an action that cannot be undone."""
