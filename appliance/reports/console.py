"""``qey report JOB``: a job's findings report in a shell, to standard output or a file.

Through the running appliance's control socket (the API's ``/report``, the same bytes the
panel's downloads get); when no appliance runs, gathered from the data directory's
database, read-only (as ``qey tasks tree`` reads it).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from appliance.reports.formats import FORMAT_NAMES, FORMATS
from appliance.reports.gather import gather_report
from appliance.settings import Settings


def run(settings: Settings, job_id: str, fmt: str, output: Path | None) -> int:
    """Print or write the report; errors are ApplianceError or ValueError (the CLI's line)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMAT_NAMES)}, not {fmt!r}")
    body = asyncio.run(_through_appliance(settings, job_id, fmt))
    if body is None:
        body = asyncio.run(_on_disk(settings, job_id, fmt))
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return 0
    _write(output, body)
    print(f"qey: report of {job_id} written to {output}", file=sys.stderr)
    return 0


async def _through_appliance(settings: Settings, job_id: str, fmt: str) -> bytes | None:
    from appliance.client import ControlClient, NotRunning

    try:
        async with ControlClient(settings.control_socket) as client:
            return await client.report(job_id, fmt)
    except NotRunning:
        return None


async def _on_disk(settings: Settings, job_id: str, fmt: str) -> bytes:
    from appliance.runtime import KnowledgeStore, Store, SystemClock, TaskGraph

    if not settings.db_path.exists():
        raise ValueError(f"no appliance data in {settings.data_dir} yet")
    store = Store(settings.db_path)
    try:
        report = await gather_report(TaskGraph(store), KnowledgeStore(store, SystemClock()), job_id)
    finally:
        store.close()
    return FORMATS[fmt].render(report)


def _write(path: Path, body: bytes) -> None:
    """The whole file or none of it: written beside, then renamed over the target. Owner-only,
    like everything the appliance keeps: findings say where a network is weak."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
