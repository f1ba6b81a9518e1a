"""A panel served on a real loopback port from a thread of its own, for clients that are not
asyncio (schemathesis's requests, a browser): the runtime, the test agent types and the panel
run on that thread's loop until the context ends."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from appliance.runtime import Runtime, Store, running
from appliance.schedules.cadence import Every
from appliance.schedules.store import Schedules
from appliance.web.credentials import Credentials
from appliance.web.panel import Panel
from tests.support import Counter, Echo, Parent
from tests.web.conftest import PASSWORD, make_test_panel


class LivePanel:
    def __init__(self, base_url: str, session: requests.Session, csrf: str) -> None:
        self.base_url = base_url
        self.session = session
        self.csrf = csrf


@contextmanager
def live_panel(data_dir: Path) -> Iterator[LivePanel]:
    started = threading.Event()
    urls: list[str] = []
    loop = asyncio.new_event_loop()
    main: list[asyncio.Task[None]] = []
    errors: list[BaseException] = []

    async def serve() -> None:
        store = Store(data_dir / "qey.db")
        runtime = Runtime(store)
        for cls in (Counter, Echo, Parent):
            runtime.register(cls)
        creds = Credentials(data_dir)
        creds.set_password(PASSWORD)
        try:
            async with running(runtime), asyncio.TaskGroup() as tg:
                schedules = Schedules(store, runtime.clock)
                schedules.add("scan 127.0.0.1", Every(count=1, unit="hour"), job_id="job-x")
                app = make_test_panel(runtime, creds, schedules=schedules)
                panel = Panel(app, ["127.0.0.1:0"])
                tg.create_task(panel.run())
                await panel.listening.wait()
                urls.extend(panel.urls)
                started.set()
        finally:
            store.close()

    def thread() -> None:
        task = loop.create_task(serve())
        main.append(task)
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        except BaseException as err:  # surfaced to the test below
            errors.append(err)
            started.set()
        finally:
            loop.close()

    t = threading.Thread(target=thread, name="live-panel", daemon=True)
    t.start()
    try:
        assert started.wait(20) and not errors, errors
        base = urls[0].rstrip("/")
        session = requests.Session()
        form = session.get(f"{base}/login", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        session.post(
            f"{base}/login", data={"csrf_token": token.group(1), "password": PASSWORD}, timeout=10
        )
        page = session.get(f"{base}/", timeout=10)
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert csrf, page.text[:300]
        yield LivePanel(base, session, csrf.group(1))
    finally:
        loop.call_soon_threadsafe(main[0].cancel)
        t.join(20)
