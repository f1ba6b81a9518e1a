"""The appliance's start: the router's model loading beside the imports, and the account of
where the start went.

On the board's slow cores, and under QEMU's TCG, the start is mostly Python importing (about
16 s under TCG) and onnxruntime building the router's session (about 4 s). The session is
built in C++ without Python's lock, so ``RouterLoading`` starts it in a thread before the
rest of the appliance is imported: on two cores the model is ready when the imports are.
This module imports neither onnxruntime nor the web stack itself, so ``qey run`` can start
the load first; the thread imports the router.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from concurrent.futures import Future, wait
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.hal.board import BoardProfile, load_board
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.router import Router, RouterSettings


def router_settings(board: BoardProfile, settings: Settings) -> RouterSettings:
    """The router as the board wants it: its plugin provider, the device types it wants in
    order, strict or not, with the phrases' vectors kept in the data directory between
    starts."""
    from appliance.router import Plugin, RouterSettings

    wanted = board.router
    plugin = None
    if wanted.plugin is not None:
        p = wanted.plugin
        plugin = Plugin(path=p.path, package=p.package, provider=p.provider, options=p.options)
    return RouterSettings(
        plugin=plugin,
        devices=list(wanted.devices),
        strict=wanted.strict,
        cache_dir=settings.data_dir / "router",
    )


class RouterLoading:
    """The router for these settings, loading in its own thread from construction on.
    ``result()`` waits for it and raises what the load raised (a missing or corrupt model, a
    strict board without its NPU), so a failed load still fails the start."""

    def __init__(self, settings: Settings) -> None:
        self.seconds = 0.0
        """How long the load itself took (it runs beside other work)."""
        self._future: Future[Router] = Future()
        threading.Thread(
            target=self._load, args=(settings,), name="qey-router-load", daemon=True
        ).start()

    def _load(self, settings: Settings) -> None:
        started = time.monotonic()
        try:
            from appliance.router import Router

            router = Router(router_settings(load_board(settings.board), settings))
        except BaseException as err:  # handed to whoever waits in result()
            self._future.set_exception(err)
        else:
            self._future.set_result(router)
        finally:
            self.seconds = time.monotonic() - started

    def result(self) -> Router:
        return self._future.result()

    def settle(self) -> None:
        """Wait for the load to end, whatever it gave: for a start that failed before it
        took the router."""
        wait([self._future])


def allow_open_files(wanted: int = 8192) -> int:
    """Raise this process's soft limit of open files towards ``wanted`` (never past the hard
    limit) and return it. A scan holds many connections at once (each collector instance's
    scan_concurrency probes, several instances at once), and Linux's default soft limit of
    1,024 would fail the excess."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        return ceiling
    return soft


class StartupClock:
    """Where the start went, phase by phase, for the ready line: on a slow board (or under
    QEMU's TCG) that is what tells a user which part to wait for. Work that ran beside the
    phases (``beside``) is said after them, with its own duration."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.beside: dict[str, float] = {}
        self._last = time.monotonic()

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        self.phases[phase] = now - self._last
        self._last = now

    def summary(self) -> str:
        total = process_age()
        parts = ", ".join(f"{name} {secs:.1f}" for name, secs in self.phases.items())
        if self.beside:
            parts += "; beside them: " + ", ".join(
                f"{name} {secs:.1f}" for name, secs in self.beside.items()
            )
        return f"started in {total:.1f} s: {parts}" if total is not None else parts


def process_age(stat: Path = Path("/proc/self/stat")) -> float | None:
    """Seconds since this process began (imports included), or None off Linux. Read by hand:
    psutil's ``create_time`` adds the kernel's boot time in whole seconds, and the startup
    line wants tenths."""
    try:
        start_ticks = int(stat.read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
