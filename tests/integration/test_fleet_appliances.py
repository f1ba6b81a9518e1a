"""Three ``qey run`` processes in one fleet, enrolled the way an admin does it: each device's
``qey fleet key``, the fleet server's ``[fleet.server]`` table, ``qey fleet server-config`` for
nats-server. Each device sees the others with the scope it covers; one killed with SIGKILL is
shown lost; a device whose broker is away still starts and says why it is alone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import msgspec
import pytest

from appliance.fleet.server import server_config
from appliance.fleet.status import FleetStatus
from appliance.settings import Settings
from appliance.web.views import JobView
from tests.integration.broker import board_allowing, free_port, nats_server
from tests.integration.processes import running_appliance

pytestmark = pytest.mark.integration

SCOPES = {"alpha": "127.1.0.0/24", "beta": "127.2.0.0/24", "gamma": "127.3.0.0/24"}


def qey(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        env={**os.environ, "QEY_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def configure(data_dir: Path, name: str, url: str) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "config.toml").write_text(
        f'scope = ["{SCOPES.get(name, "127.9.0.0/24")}"]\n'
        f'web_listen = []\n\n[fleet]\nservers = ["{url}"]\nname = "{name}"\n'
        "heartbeat_s = 0.3\nlost_after_s = 1.5\n"
    )
    return Settings.load({"QEY_DATA_DIR": str(data_dir)})


def fleet_status(data_dir: Path) -> FleetStatus:
    """What ``qey fleet status`` reads, decoded (the API's own type)."""
    return msgspec.json.decode(
        subprocess.run(
            [sys.executable, "-c", _STATUS],
            env={**os.environ, "QEY_DATA_DIR": str(data_dir)},
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout,
        type=FleetStatus,
    )


_STATUS = """
import asyncio, msgspec, sys
from appliance.client import ControlClient
from appliance.settings import Settings
async def main():
    async with ControlClient(Settings.load().control_socket) as c:
        sys.stdout.buffer.write(msgspec.json.encode(await c.fleet()))
asyncio.run(main())
"""


def until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.2)


@pytest.fixture
def enrolled(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """The fleet server (a nats-server from ``qey fleet server-config``) and three devices'
    data directories, each with its key enrolled there."""
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    dirs = {name: tmp_path / name for name in SCOPES}
    keys = {}
    for name, data_dir in dirs.items():
        configure(data_dir, name, url)
        keys[name] = qey(data_dir, "fleet", "key").strip()
        assert keys[name].startswith("U") and len(keys[name]) == 56
        assert qey(data_dir, "fleet", "key").strip() == keys[name]  # made once, then kept
        assert (data_dir / "fleet.nkey").stat().st_mode & 0o077 == 0
    server = tmp_path / "server"
    server.mkdir()
    devices = "".join(f'{n} = "{k}"\n' for n, k in keys.items())
    board = board_allowing(server / "board.toml", f"127.0.0.1:{port}")
    (server / "config.toml").write_text(
        f'board = "{board}"\n\n[fleet.server]\nlisten = "127.0.0.1:{port}"\n'
        f"[fleet.server.devices]\n{devices}"
    )
    config = qey(server, "fleet", "server-config").encode()
    with nats_server(tmp_path, config, port):
        yield dirs


def test_three_appliances_see_each_other_and_a_killed_one_is_lost(
    enrolled: dict[str, Path],
) -> None:
    dirs = enrolled
    with ExitStack() as stack:
        procs = {
            name: stack.enter_context(
                running_appliance(Settings.load({"QEY_DATA_DIR": str(data_dir)}))
            )
            for name, data_dir in dirs.items()
        }
        until(lambda: len(fleet_status(dirs["alpha"]).devices) == 3)
        status = fleet_status(dirs["alpha"])
        assert status.enabled and status.connected and status.name == "alpha"
        assert status.key == qey(dirs["alpha"], "fleet", "key").strip()  # shown to enrol it
        assert {d.name: d.scope for d in status.devices} == {n: [s] for n, s in SCOPES.items()}
        assert all(d.state == "up" and d.health == "ok" for d in status.devices)
        assert "data_collector" in status.devices[0].types
        printed = qey(dirs["gamma"], "fleet", "status")
        assert printed.startswith("gamma: connected to 127.0.0.1:")
        assert f"its key: {qey(dirs['gamma'], 'fleet', 'key').strip()}" in printed
        assert all(f"scope {s}" in printed for s in SCOPES.values())

        procs["beta"].send_signal(signal.SIGKILL)
        procs["beta"].wait(10)
        until(
            lambda: (
                {d.name: d.state for d in fleet_status(dirs["alpha"]).devices}.get("beta") == "lost"
            )
        )
        assert fleet_status(dirs["gamma"]).connected


def test_a_device_whose_broker_is_away_starts_alone_and_says_why(tmp_path: Path) -> None:
    settings = configure(tmp_path / "lone", "lone", f"nats://127.0.0.1:{free_port()}")
    with running_appliance(settings):
        until(lambda: "cannot connect" in fleet_status(settings.data_dir).problem)
        status = fleet_status(settings.data_dir)
        assert status.enabled and not status.connected and status.devices == []
        assert "NOT connected (cannot connect to nats://127.0.0.1:" in qey(
            settings.data_dir, "fleet", "status"
        )


def test_a_single_device_is_not_in_a_fleet_and_has_no_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "single"
    data_dir.mkdir()
    with running_appliance(Settings.load({"QEY_DATA_DIR": str(data_dir)}), env=_NO_PANEL):
        assert not fleet_status(data_dir).enabled
        assert "not in a fleet" in qey(data_dir, "fleet", "status")
    assert not (data_dir / "fleet.nkey").exists()


def test_bad_fleet_settings_fail_at_start_naming_the_field(tmp_path: Path) -> None:
    for table, words in (
        ('[fleet]\nservers = ["http://broker:4222"]\n', "not a broker address"),
        ('[fleet]\nservers = ["nats://b:4222"]\nname = "Has.Dot"\n', "not a device name"),
        ('[fleet.server.devices]\nalpha = "nope"\n', "not a device's public key"),
    ):
        (tmp_path / "config.toml").write_text(table)
        with pytest.raises(ValueError, match=words):
            Settings.load({"QEY_DATA_DIR": str(tmp_path)})


_NO_PANEL = {"QEY_WEB_LISTEN": ""}


def job_of(data_dir: Path, job_id: str, wait: float = 0) -> JobView:
    """``GET /api/v1/jobs/JOB`` on that device (waiting up to ``wait`` s for its end)."""
    script = (
        "import asyncio, msgspec, sys\n"
        "from appliance.client import ControlClient\n"
        "from appliance.settings import Settings\n"
        "async def main():\n"
        "    async with ControlClient(Settings.load().control_socket) as c:\n"
        f"        view = await c.job({job_id!r}, wait={wait})\n"
        "        sys.stdout.buffer.write(msgspec.json.encode(view))\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "QEY_DATA_DIR": str(data_dir)},
        capture_output=True,
        timeout=60 + wait,
    )
    assert done.returncode == 0, done.stderr
    return msgspec.json.decode(done.stdout, type=JobView)


@pytest.fixture
def listeners() -> Iterator[dict[str, tuple[str, int]]]:
    """One open port on an address of each segment (loopback: every 127/8 address is ours)."""
    socks = {}
    for name, host in (("alpha", "127.1.0.5"), ("beta", "127.2.1.7"), ("gamma", "127.3.0.9")):
        s = socket.socket()
        s.bind((host, 0))
        s.listen()
        socks[name] = s
    try:
        yield {name: s.getsockname() for name, s in socks.items()}
    finally:
        for s in socks.values():
            s.close()


def test_a_job_spans_three_appliances_and_survives_one_killed_mid_job(
    tmp_path: Path, listeners: dict[str, tuple[str, int]]
) -> None:
    """alpha's posture job names a host of its own segment, beta's /22 and a host of gamma's;
    gamma reaches beta's segment too. beta is killed with SIGKILL while it scans: alpha
    places the scan again on gamma, and the job finds every open port."""
    scopes = {
        "alpha": ["127.1.0.0/24"],
        "beta": ["127.2.0.0/22"],
        "gamma": ["127.2.0.0/22", "127.3.0.0/24"],
    }
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    dirs = {name: tmp_path / name for name in scopes}
    keys = {}
    for name, data_dir in dirs.items():
        data_dir.mkdir()
        (data_dir / "config.toml").write_text(
            f"scope = {scopes[name]!r}\nweb_listen = []\n\n[fleet]\nservers = [{url!r}]\n"
            f'name = "{name}"\nheartbeat_s = 0.3\nlost_after_s = 1.5\n'.replace("'", '"')
        )
        keys[name] = qey(data_dir, "fleet", "key").strip()
    with ExitStack() as stack:
        stack.enter_context(
            nats_server(
                tmp_path,
                server_config(keys, listen=f"127.0.0.1:{port}", store_dir=tmp_path / "js"),
                port,
            )
        )
        procs = {
            name: stack.enter_context(
                running_appliance(Settings.load({"QEY_DATA_DIR": str(data_dir)}))
            )
            for name, data_dir in dirs.items()
        }
        until(lambda: len(fleet_status(dirs["alpha"]).devices) == 3)
        ports = {p for _h, p in listeners.values()}
        low = min(ports) - 60  # 60 closed ports a host: beta's /22 takes a few seconds
        wanted = ", ".join(str(p) for p in sorted(ports))
        accepted = msgspec.json.decode(
            qey(
                dirs["alpha"],
                "submit",
                f"analyze network security posture of {listeners['alpha'][0]}, 127.2.0.0/22, "
                f"{listeners['gamma'][0]} ports {low}-{min(ports) - 1}, {wanted}",
                "--agent",
                "coordinator",
                "--json",
            )
        )
        job_id = accepted["job_id"]
        # beta has taken its scan: the task is in its own graph, under alpha's coordinator
        until(lambda: "DataCollector" in qey_or_empty(dirs["beta"], "tasks", "tree", job_id))
        procs["beta"].send_signal(signal.SIGKILL)
        procs["beta"].wait(10)
        view = job_of(dirs["alpha"], job_id, wait=120)
        assert view.status == "done", view
        found = {(h["host"], p) for h in view.result["open"] for p in h["open_ports"]}
        assert set(listeners.values()) <= found
        tree = qey(dirs["alpha"], "tasks", "tree", job_id, "--status")
        assert "@beta // 127.2.0.0/22 [failed]" in tree  # beta's try, recorded
        assert "@gamma // 127.2.0.0/22 [done]" in tree  # beta's segment again, on gamma
        assert "@gamma // 127.3.0.9 [done]" in tree
        assert f"@gamma // {listeners['beta'][0]}: open {listeners['beta'][1]} [done]" in tree
        assert ") // 127.1.0.5 [done]" in tree  # alpha scanned its own host itself
        assert "@alpha" not in tree  # alpha's own tasks carry no device in its own graph
        # gamma holds the whole job too (the graph's stream): alpha's parts marked as alpha's
        until(lambda: "@alpha" in qey_or_empty(dirs["gamma"], "tasks", "tree", job_id))
        theirs = qey(dirs["gamma"], "tasks", "tree", job_id, "--status")
        assert theirs.startswith('User Command: "analyze network security posture of')
        assert "Coordinator (" in theirs and "@beta" in theirs and "[failed]" in theirs


def qey_or_empty(data_dir: Path, *args: str) -> str:
    """``qey`` output, or nothing while it fails (the job is not in that graph yet)."""
    done = subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        env={**os.environ, "QEY_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout if done.returncode == 0 else ""


ARCHIVER = """
from appliance.events import Started
from appliance.runtime import Agent, Context, NoState


class Archiver(Agent):
    name = "config_archiver"
    description = "Archives the running configuration of network switches and routers."
    capabilities = ("archive a switch's configuration", "keep a copy of a router's config")
    examples = ("archive the configuration of the switch at 127.2.0.9",)

    async def on_start(self, event: Started, ctx: Context[NoState]) -> str:
        return f"archived on beta: {event.objective}"
"""


def extension_on(data_dir: Path, module: str, source: str, entry: str) -> None:
    """An extension as ``qey extension install`` leaves it in the data directory's site."""
    site = data_dir / "extensions" / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[qey.agents]\n{entry} = {module}:Archiver\n")


def test_a_command_in_free_text_for_a_type_only_another_device_runs_is_routed_there(
    enrolled: dict[str, Path],
) -> None:
    """beta runs an extension alpha does not have: alpha's router learns its words from
    beta, so a plain command on alpha becomes alpha's job with its root on beta; once beta
    is lost, the command is refused by what alpha runs itself."""
    dirs = enrolled
    extension_on(dirs["beta"], "qey_archiver_test", ARCHIVER, "archiver")
    command = "archive the configuration of the switch at 127.2.0.9"
    with ExitStack() as stack:
        procs = {
            name: stack.enter_context(
                running_appliance(Settings.load({"QEY_DATA_DIR": str(dirs[name])}))
            )
            for name in ("alpha", "beta")
        }
        until(
            lambda: any("config_archiver" in d.types for d in fleet_status(dirs["alpha"]).devices)
        )

        def submitted() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "appliance.cli", "submit", command, "--json"],
                env={**os.environ, "QEY_DATA_DIR": str(dirs["alpha"])},
                capture_output=True,
                text=True,
                timeout=60,
            )

        # the cards follow the heartbeat that names the type: routed once they have come
        until(lambda: submitted().returncode == 0)
        accepted = msgspec.json.decode(submitted().stdout)
        assert fleet_status(dirs["alpha"]).routed_elsewhere == ["config_archiver"]
        assert fleet_status(dirs["beta"]).routed_elsewhere == []  # its own type
        assert "commands here also reach: config_archiver" in qey(dirs["alpha"], "fleet", "status")
        assert accepted["route"]["agent_type"] == "config_archiver", accepted
        view = job_of(dirs["alpha"], accepted["job_id"], wait=30)
        assert view.status == "done", view
        assert view.result == f"archived on beta: {command}"
        tree = qey(dirs["alpha"], "tasks", "tree", accepted["job_id"], "--status")
        assert "@beta" in tree and "[done]" in tree, tree
        # a plan with a step of that type: alpha's coordinator places the step on beta
        plan = msgspec.json.decode(
            qey(dirs["alpha"], "submit", f"scan 127.1.0.5 then {command}", "--json")
        )
        assert plan["route"]["reason"] == "multi-step", plan
        view = job_of(dirs["alpha"], plan["job_id"], wait=60)
        assert view.status == "done", view
        steps = {step["agent_type"]: step for step in view.result["steps"]}
        assert steps["data_collector"]["status"] == "done"
        assert steps["config_archiver"]["result"] == f"archived on beta: {command}"
        tree = qey(dirs["alpha"], "tasks", "tree", plan["job_id"])
        assert tree.count("@beta") == 1, tree  # the archiver's step; alpha scanned its own

        procs["beta"].send_signal(signal.SIGKILL)
        procs["beta"].wait(10)
        # alpha's own types are left: the nearest of them refuses it, saying why
        until(lambda: submitted().returncode != 0)
        assert fleet_status(dirs["alpha"]).routed_elsewhere == []
        refused = submitted()
        assert refused.stderr.startswith("qey: ") and "config_archiver" not in refused.stderr
