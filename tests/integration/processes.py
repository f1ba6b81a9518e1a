"""The appliance as a user runs it: ``qey run`` in a process of its own, for the tests that
talk to it from outside (the CLI, the data directory's lock, schedules)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from appliance.settings import Settings


@contextmanager
def running_appliance(
    settings: Settings, prefix: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``qey run`` on the settings' data directory, ready; stopped with SIGTERM after, and
    its exit must be clean (0), unless the test killed it with SIGKILL itself. Its remaining
    stdout is left for the caller to read.
    ``prefix`` runs it under another command that execs it (a network namespace's); ``env``
    adds to its environment."""
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "appliance.cli", "run"],
        env={**os.environ, **(env or {}), "QEY_DATA_DIR": str(settings.data_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        ready = process.stdout.readline()
        assert ready.startswith("qey ready"), process.stderr.read()
        yield process
    finally:
        if process.poll() != -signal.SIGKILL:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
