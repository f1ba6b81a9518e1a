"""Times in reports: UTC, to the second, the same in every format."""

from __future__ import annotations

from datetime import UTC, datetime


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
