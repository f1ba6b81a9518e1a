"""Password guessing against the panel's sign-in: how many checks an attacker gets per minute.

Ours: the panel (make_panel on a real runtime, its own process, served on 127.0.0.1) and an
attacker in this process posting wrong passwords to POST /login with a valid form token, in
three ways: one address, one attempt after another; one address, 100 attempts at once, again
and again; 300 addresses of 127.0.0.0/8 (each a connection bound to its own source address),
each one attempt after another. A "check" is an answer that says the password was wrong
(401): the server ran scrypt on it. A 429 was refused before any check. Each way runs against
a fresh panel for ``--seconds`` (default 60: the budgets are per minute) and its count is
scaled to a minute.

Then the owner: with the attack of 300 addresses still going, a browser that signed in once
before (so holds the device cookie, where the panel issues one) signs in with the right
password; the figure is how long that took (or that it could not).

Run from the repo root: ``python bench/bench_login.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from _common import bench_runtime, figure, header

PASSWORD = "benchmark password"
WRONG = "not the password at all"
ADDRESSES = 300
BURST = 100


async def _serve(data_dir: Path) -> None:
    """The child: a panel on 127.0.0.1, its URL on stdout, until stdin closes."""
    logging.basicConfig(level=logging.ERROR)  # not a line per failed sign-in
    from appliance.web.credentials import Credentials
    from appliance.web.panel import Panel, make_panel

    async with bench_runtime() as runtime:
        creds = Credentials(data_dir)
        creds.set_password(PASSWORD)

        async def submit(command: str, agent_type: str | None) -> object:
            raise NotImplementedError

        panel = Panel(make_panel(runtime, submit, creds), ["127.0.0.1:0"])  # type: ignore[arg-type]
        async with asyncio.TaskGroup() as tg:
            server = tg.create_task(panel.run())
            await panel.listening.wait()
            print(panel.urls[0].rstrip("/"), flush=True)
            await asyncio.to_thread(sys.stdin.read)  # the parent closes it to stop us
            server.cancel()


class Served:
    """A fresh panel in a child process, for one way of attacking it."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="qey-bench-login-")
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", self._tmp.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.base = self._proc.stdout.readline().strip()
        if not self.base.startswith("http://127.0.0.1:"):
            raise RuntimeError("the panel did not start")

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)
        self._tmp.cleanup()


async def _form(session: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    """A sign-in form's token and the nonce cookie it goes with."""
    async with session.get(f"{base}/login") as resp:
        text = await resp.text()
        nonce = resp.cookies["qey_form"].value
    token = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert token, text
    return token.group(1), nonce


def _attempt(
    session: aiohttp.ClientSession, base: str, token: str, nonce: str, counts: Counter[int]
) -> Callable[[], Awaitable[None]]:
    async def attempt() -> None:
        async with session.post(
            f"{base}/login",
            data={"csrf_token": token, "password": WRONG},
            headers={"Cookie": f"qey_form={nonce}"},
            allow_redirects=False,
        ) as resp:
            await resp.read()
            counts[resp.status] += 1
            if resp.status == 429:  # what a patient attacker does; a flood would not wait
                await asyncio.sleep(min(float(resp.headers.get("Retry-After", "1")), 1.0))

    return attempt


def _client(address: str) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=BURST, force_close=False)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


async def _until(deadline: float, attempt: Callable[[], Awaitable[None]]) -> None:
    while time.monotonic() < deadline:
        try:
            await attempt()
        except aiohttp.ClientError:
            await asyncio.sleep(0.1)


async def attack(base: str, seconds: float, *, addresses: int, parallel: int) -> Counter[int]:
    """``parallel`` attempts at a time from each of ``addresses`` loopback addresses."""
    counts: Counter[int] = Counter()
    clients = [_client(f"127.0.{i // 250}.{1 + i % 250}") for i in range(addresses)]
    try:
        token, nonce = await _form(clients[0], base)
        deadline = time.monotonic() + seconds
        async with asyncio.TaskGroup() as tg:
            for client in clients:
                attempt = _attempt(client, base, token, nonce, counts)
                for _ in range(parallel):
                    tg.create_task(_until(deadline, attempt))
    finally:
        for client in clients:
            await client.close()
    return counts


async def owner_during_attack(base: str, seconds: float) -> float | None:
    """Seconds the owner's browser (signed in once before the attack) takes to sign in
    again while 300 addresses guess; None if it could not within ``seconds``."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as owner:
        token, _ = await _form(owner, base)
        await owner.post(f"{base}/login", data={"csrf_token": token, "password": PASSWORD})
        await owner.post(f"{base}/logout", data={"csrf_token": await _csrf(owner, base)})
        async with asyncio.TaskGroup() as tg:
            tg.create_task(attack(base, seconds, addresses=ADDRESSES, parallel=1))
            await asyncio.sleep(min(10.0, seconds / 2))  # the attack is under way
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds / 2:
                token, _ = await _form(owner, base)
                async with owner.post(
                    f"{base}/login",
                    data={"csrf_token": token, "password": PASSWORD},
                    allow_redirects=False,
                ) as resp:
                    if resp.status == 303:
                        return time.monotonic() - t0
                await asyncio.sleep(1.0)
    return None


async def _csrf(session: aiohttp.ClientSession, base: str) -> str:
    page = await (await session.get(f"{base}/")).text()
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found, "the owner could not sign in before the attack"
    return found.group(1)


async def main(seconds: float) -> None:
    header(f"sign-in: password checks an attacker gets per minute ({seconds:.0f} s per way)")
    ways = [
        ("one address, one at a time", 1, 1),
        (f"one address, {BURST} at once", 1, BURST),
        (f"{ADDRESSES} addresses of 127.0.0.0/8", ADDRESSES, 1),
    ]
    for label, addresses, parallel in ways:
        served = Served()
        try:
            counts = await attack(served.base, seconds, addresses=addresses, parallel=parallel)
        finally:
            served.close()
        checked = counts[401]
        others = ", ".join(f"{n} x {status}" for status, n in sorted(counts.items()))
        figure(label, checked * 60.0 / seconds, "checks/min", note=f"({others})")
    served = Served()
    try:
        took = await owner_during_attack(served.base, seconds)
    finally:
        served.close()
    if took is None:
        print(f"  the owner could not sign in during the attack (tried for {seconds / 2:.0f} s)")
    else:
        figure("owner's browser signs in during the attack", took, "s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
    else:
        asyncio.run(main(args.seconds))
