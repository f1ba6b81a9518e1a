"""``qey passwd``: the owner's way in from the device's console, whatever the panel's throttle
says. Against a real ``qey run`` (its panel on loopback, its display on the emulator), with no
appliance running, and at a terminal."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from appliance.cli import main
from appliance.hal.display.emulator import DisplayEmulator, ListenEndpoint
from appliance.settings import Settings
from appliance.web.credentials import Credentials
from tests.support import until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NEW = "set at the console"


def _config(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "config.toml").write_text('scope = ["127.0.0.1/32"]\nports = []\n')


@pytest.fixture
async def display() -> AsyncIterator[DisplayEmulator]:
    """The display emulator, listening on a loopback port for the appliance to connect."""
    emulator = DisplayEmulator(ListenEndpoint("127.0.0.1", 0))
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(emulator.run())
        yield emulator
        task.cancel()
        emulator.endpoint.close()


def _board(tmp_path: Path, display: DisplayEmulator) -> Path:
    """The sim board, its display on the emulator's port."""
    assert isinstance(display.endpoint, ListenEndpoint)
    port = display.endpoint.address[1]
    sim = (ROOT / "hw" / "boards" / "sim.toml").read_text()
    board = tmp_path / "board.toml"
    board.write_text(sim.replace("socket://127.0.0.1:7455", f"socket://127.0.0.1:{port}"))
    return board


async def _qey(env: dict[str, str], *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate(stdin)
    return proc.returncode or 0, out.decode(), err.decode()


async def _setup_form(http: aiohttp.ClientSession, base: str, token: str) -> int:
    page = await (await http.get(f"{base}/setup")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf, page
    fields = {"csrf_token": csrf.group(1), "token": token, "password": NEW, "confirm": NEW}
    async with http.post(f"{base}/setup", data=fields, allow_redirects=False) as resp:
        return resp.status


async def _sign_in(http: aiohttp.ClientSession, base: str, password: str) -> int:
    page = await (await http.get(f"{base}/login")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf, page
    fields = {"csrf_token": csrf.group(1), "password": password}
    async with http.post(f"{base}/login", data=fields, allow_redirects=False) as resp:
        return resp.status


async def test_qey_passwd_lets_the_owner_in_and_takes_the_token_off_the_display(
    tmp_path: Path, display: DisplayEmulator
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    _config(settings)
    env = {
        **os.environ,
        "QEY_DATA_DIR": str(settings.data_dir),
        "QEY_BOARD": str(_board(tmp_path, display)),
        "QEY_WEB_LISTEN": "127.0.0.1:0",
    }
    appliance = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance.cli",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert appliance.stdout is not None
    try:
        base = token = ""
        async with asyncio.timeout(90):
            while not token:
                line = (await appliance.stdout.readline()).decode()
                assert line, "qey run ended before printing its setup token"
                if m := re.match(r"qey panel (http://127\.0\.0\.1:\d+)/", line):
                    base = m.group(1)
                if m := re.match(r"qey setup token (\S+)", line):
                    token = m.group(1)
        notice = f"setup token {token}"
        await until(lambda: notice in display.screen.texts.values(), 30)

        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            # guessers have locked this address out of the setup page
            statuses = [await _setup_form(http, base, "AAAA-BBBB") for _ in range(4)]
            assert statuses[0] == 401 and statuses[-1] == 429

            code, out, err = await _qey(env, "passwd", "--stdin", stdin=f"{NEW}\n".encode())
            assert code == 0, err
            assert "by the running appliance" in out

            await until(lambda: notice not in display.screen.texts.values(), 5)
            assert await _sign_in(http, base, NEW) == 303  # at once: the throttle forgot
            assert (await http.get(f"{base}/api/v1/status")).status == 200
    finally:
        appliance.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await appliance.wait()


def test_qey_passwd_with_no_appliance_running_writes_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    Credentials(data_dir).set_password("the forgotten password")
    monkeypatch.setenv("QEY_DATA_DIR", str(data_dir))
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{NEW}\n"))
    assert main(["passwd", "--stdin"]) == 0
    assert "no appliance was running" in capsys.readouterr().out
    creds = Credentials(data_dir)
    assert creds.verify(NEW) and not creds.verify("the forgotten password")


def test_qey_passwd_never_writes_beside_an_appliance_that_holds_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An appliance whose control socket is gone still holds the directory: the password
    file is its to change, so the console says who holds it and changes nothing."""
    from appliance.datadir import DataDirLock

    data_dir = tmp_path / "data"
    Credentials(data_dir).set_password("the forgotten password")
    monkeypatch.setenv("QEY_DATA_DIR", str(data_dir))
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{NEW}\n"))
    held = DataDirLock.acquire(data_dir)  # what a running appliance holds, socket or not
    try:
        assert main(["passwd", "--stdin"]) == 1
    finally:
        held.release()
    assert f"pid {os.getpid()}" in capsys.readouterr().err
    assert Credentials(data_dir).verify("the forgotten password")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("answers", "tty", "code", "says"),
    [
        ([NEW, NEW], True, 0, "the admin password is set"),
        ([NEW, NEW + "x"], True, 1, "the two passwords differ"),
        (["short", "short"], True, 1, "at least 10 characters"),
        ([NEW, NEW], False, 1, "add --stdin"),
    ],
)
def test_qey_passwd_asks_twice_at_the_terminal(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answers: list[str],
    tty: bool,
    code: int,
    says: str,
) -> None:
    """The terminal is the edge here: getpass answers what a person would type."""
    data_dir = tmp_path / "data"
    Credentials(data_dir).set_password("the forgotten password")
    monkeypatch.setenv("QEY_DATA_DIR", str(data_dir))
    monkeypatch.setattr(sys, "stdin", _Terminal() if tty else io.StringIO(""))
    typed = iter(answers)

    def getpass(prompt: str = "", stream: Any = None) -> str:
        return next(typed)

    monkeypatch.setattr("getpass.getpass", getpass)
    assert main(["passwd"]) == code
    captured = capsys.readouterr()
    assert says in captured.out + captured.err
    assert Credentials(data_dir).verify(NEW) == (code == 0)
