"""Identifiers that are unique across restarts yet short enough to read in a tree.

Random parts come from ``os.urandom``, which is what ``secrets.token_hex`` reads: importing
``secrets`` would pull hashlib, hmac and random into every start (about 1 MB of memory).
"""

from __future__ import annotations

import itertools
import os

_BOOT = os.urandom(3).hex()
_counter = itertools.count(1)


def new_task_id() -> str:
    """``task-<boot>-<n>``: a per-process random prefix keeps ids unique across restarts."""
    return f"task-{_BOOT}-{next(_counter)}"


def new_job_id() -> str:
    return f"job-{os.urandom(4).hex()}"


def new_command_id() -> str:
    return f"cmd-{os.urandom(4).hex()}"
