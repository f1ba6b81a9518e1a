"""What the hardware layer raises: library errors are translated here, at the edge."""

from __future__ import annotations

from appliance.errors import ApplianceError, TransientError


class BadBoardProfile(ApplianceError, ValueError):
    """A board profile is missing, malformed or inconsistent; the message names file and field."""


class HardwareUnavailable(ApplianceError):
    """A device the board profile names cannot be driven here (library or device missing)."""


class DisplayUnavailable(TransientError):
    """The display's serial port cannot be opened or went away; the service retries it."""
