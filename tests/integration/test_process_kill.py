"""kill -9 during writes, 20 times in a row: each restart opens the store cleanly and resumes."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _start(db: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.killable", str(db)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
    )


def _line(child: subprocess.Popen[str], prefix: str) -> str:
    assert child.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        assert line, f"child ended before printing {prefix!r}"
    raise AssertionError(f"no {prefix!r} within 30 s")


def test_kill_9_twenty_times_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "qey.db"
    rng = random.Random(11)
    counts = []
    for _ in range(20):
        child = _start(db)
        try:
            assert _line(child, "integrity") == "integrity ok"
            counts.append(int(_line(child, "start count=").split("=")[1]))
            time.sleep(rng.uniform(0.05, 0.3))  # ticking: a commit every few ms
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL
    assert counts == sorted(counts), "a restart came back with less than was committed"
    assert counts[-1] > counts[1] > 0  # it resumed and kept going, run after run

    last = _start(db, QEY_TICK_LIMIT=str(counts[-1] + 20))
    assert _line(last, "integrity") == "integrity ok"
    resumed_at = int(_line(last, "start count=").split("=")[1])
    assert resumed_at >= counts[-1]
    assert _line(last, "done count=") == f"done count={max(resumed_at, counts[-1] + 20)}"
    assert last.wait(timeout=30) == 0

    with sqlite3.connect(db) as conn:
        statuses = [
            s
            for (s,) in conn.execute(
                "SELECT json_extract(body, '$.status') FROM journal WHERE kind = 'task.status' "
                "ORDER BY seq"
            )
        ]
    assert statuses == ["restarted"] * 20 + ["done"]  # every resume is in the graph
