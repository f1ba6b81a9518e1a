"""Identifiers that are unique across restarts yet short enough to read in a tree."""

from __future__ import annotations

import itertools
import secrets

_BOOT = secrets.token_hex(3)
_counter = itertools.count(1)


def new_task_id() -> str:
    """``task-<boot>-<n>``: a per-process random prefix keeps ids unique across restarts."""
    return f"task-{_BOOT}-{next(_counter)}"


def new_job_id() -> str:
    return f"job-{secrets.token_hex(4)}"


def new_command_id() -> str:
    return f"cmd-{secrets.token_hex(4)}"
