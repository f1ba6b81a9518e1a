"""``qey``: run the appliance and talk to it from a shell."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from appliance import __version__
from appliance.errors import ApplianceError, Refused
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.fleet.status import FleetStatus
    from appliance.runtime import Store, TaskGraph
    from appliance.web.views import JobAccepted, JobView

T = TypeVar("T")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
        return result
    except (ApplianceError, ValueError) as err:
        print(f"qey: {err}", file=sys.stderr)
        if _kind(err) == "NoConfidentMatch":
            print("qey: or name the agent type: --agent TYPE (qey agents)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _kind(err: BaseException) -> str:
    """What kind of refusal: raised here, or answered by the running appliance's API."""
    return err.kind if isinstance(err, Refused) else type(err).__name__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qey", description="qEY-0 appliance command line.")
    parser.add_argument("--version", action="version", version=f"qey {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(title="commands")

    run = sub.add_parser(
        "run",
        help="run the appliance in the foreground",
        description="Run the runtime, the built-in agents and the control API "
        "until interrupted. Data lives in $QEY_DATA_DIR.",
    )
    run.set_defaults(func=cmd_run)

    submit = sub.add_parser(
        "submit",
        help="submit a command as a new job",
        description="Submit a command to the running appliance, or run it "
        "in this process when none is running.",
    )
    submit.add_argument("command", help='e.g. "analyze network security posture of 127.0.0.1"')
    submit.add_argument("--agent", help="agent type to give it to (default: the router picks)")
    submit.add_argument("--wait", action="store_true", help="wait for the job to end")
    submit.add_argument("--timeout", type=float, default=600.0, help="seconds to wait at most")
    submit.add_argument("--json", action="store_true", help="print the outcome as JSON")
    submit.set_defaults(func=cmd_submit)

    jobs = sub.add_parser("jobs", help="list recent jobs", description="List recent jobs.")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(func=cmd_jobs)

    events = sub.add_parser(
        "events",
        help="the events a job's handlers took (the audit trail)",
        description="Every event a handler of the job (or of one task) was handed, oldest "
        "first, with how the handler ended: from the audit trail in the data directory.",
    )
    events.add_argument("job_id")
    events.add_argument("--task", help="only this task's")
    events.add_argument("--limit", type=int, default=1000, help="the newest this many")
    events.add_argument("--json", action="store_true", help="one JSON object a line")
    events.set_defaults(func=cmd_events)

    report = sub.add_parser(
        "report",
        help="a job's findings report (Markdown, CSV, JSON or HTML)",
        description="Print a job's findings report: worst first, what is new and what was "
        "resolved since the last job on the same targets, and any step that failed. From "
        "the running appliance, or from the data directory when none runs.",
    )
    report.add_argument("job_id", metavar="JOB")
    report.add_argument("--format", default="md", choices=("md", "csv", "json", "html"))
    report.add_argument("--output", type=Path, help="write it to this file (owner-only)")
    report.set_defaults(func=cmd_report)

    schedules = sub.add_parser(
        "schedules",
        help="list, pause, resume or delete schedules",
        description="Schedules are commands that run again on their own ('scan 10.0.0.0/24 "
        "every night' makes one). With no action, list them; 'pause ID', 'resume ID' (from "
        "its next firing after now) and 'delete ID' change one. Talks to the running "
        "appliance, or to the data directory when none runs.",
    )
    schedules.add_argument(
        "action", nargs="?", default="list", choices=("list", "pause", "resume", "delete")
    )
    schedules.add_argument("schedule_id", nargs="?", metavar="ID", help="the schedule's id")
    schedules.add_argument("--json", action="store_true", help="print the result as JSON")
    schedules.set_defaults(func=cmd_schedules)

    approvals = sub.add_parser(
        "approvals",
        help="the actions waiting for your approval; approve or reject one",
        description="Blocks, quarantines and revocations wait for an admin's yes; one not "
        "approved before its deadline is not done. With no action, list those waiting; "
        "'approve ID' carries one out, 'reject ID' closes it. Talks to the running appliance.",
    )
    approvals.add_argument(
        "verb", nargs="?", default="list", choices=("list", "approve", "reject"), metavar="ACTION"
    )
    approvals.add_argument("action_id", nargs="?", metavar="ID", help="the action's id")
    approvals.add_argument("--json", action="store_true", help="print the result as JSON")
    approvals.set_defaults(func=cmd_approvals)

    actions = sub.add_parser(
        "actions",
        help="every action taken or asked for, and what became of it",
        description="Every action (block, quarantine, allow-list, revoke, notify), oldest first.",
    )
    actions.add_argument("--json", action="store_true", help="print the result as JSON")
    actions.set_defaults(func=cmd_actions)

    undo = sub.add_parser(
        "undo",
        help="take back an applied action (a block, quarantine or allow-list entry)",
        description="Take back an applied firewall action; 'qey actions' lists their ids.",
    )
    undo.add_argument("action_id", metavar="ACTION")
    undo.add_argument("--json", action="store_true", help="print the result as JSON")
    undo.set_defaults(func=cmd_undo)

    tasks = sub.add_parser(
        "tasks",
        help="inspect the coordination graph",
        description="Inspect the coordination graph.",
    )
    tsub = tasks.add_subparsers(title="views")
    tree = tsub.add_parser(
        "tree",
        help="a job's task tree",
        description="Print a job's task tree: each instance, its parent and its objective.",
    )
    tree.add_argument("job_id")
    tree.add_argument("--status", action="store_true", help="show each task's status")
    tree.set_defaults(func=cmd_tree)
    chain = tsub.add_parser(
        "chain",
        help="a task's chain back to its command",
        description="Print a task and its ancestors up to the command.",
    )
    chain.add_argument("task_id")
    chain.set_defaults(func=cmd_chain)

    fleet = sub.add_parser(
        "fleet",
        help="this device in a fleet of appliances",
        description="Several appliances as one system over a NATS broker ([fleet] in config.toml).",
    )
    fsub = fleet.add_subparsers(title="views", required=True)
    fsub.add_parser(
        "status",
        help="the broker connection and every device heard",
        description="Print this device's broker connection and each device it hears: state, "
        "last seen, health, version, load and the scope it covers.",
    ).set_defaults(func=cmd_fleet_status)
    fsub.add_parser(
        "key",
        help="print this device's public key (made on first use)",
        description="Print this device's public NATS key, to enrol it on the fleet server "
        "([fleet.server] devices); the private seed never leaves the data directory.",
    ).set_defaults(func=cmd_fleet_key)
    server_config = fsub.add_parser(
        "server-config",
        help="print the broker's configuration for the fleet-server role",
        description="Print nats-server's configuration from [fleet.server] in config.toml: "
        "only the enrolled devices' keys get in, each with its own permissions; it listens "
        "only where the board profile's [fleet_broker] allows.",
    )
    server_config.add_argument(
        "--store-dir",
        help="where the broker keeps the fleet's graph stream (JetStream; default: "
        "fleet-broker/ in the data directory)",
    )
    server_config.add_argument(
        "--out", help="write it to this file (mode 0640, the directory's group) instead"
    )
    server_config.add_argument(
        "--if-role",
        action="store_true",
        help="only say whether the role is on: exit 0 if config.toml has [fleet.server], "
        "1 if not (the image's broker unit starts on that)",
    )
    server_config.set_defaults(func=cmd_fleet_server_config)
    fsub.add_parser(
        "cluster-secret",
        help="print the brokers' route secret (made on first use)",
        description="Print the secret a cluster of brokers authenticates its routes with, "
        "making fleet-cluster.secret in the data directory if there is none; copy that file "
        "to the same place on every broker of the cluster.",
    ).set_defaults(func=cmd_fleet_cluster_secret)

    agents = sub.add_parser(
        "agents", help="list agent types", description="List the registered agent types."
    )
    agents.set_defaults(func=cmd_agents)

    from appliance.extensions.command import add_extension_parser

    add_extension_parser(sub)

    egress = sub.add_parser(
        "egress-policy",
        help="print the nftables egress policy for the appliance's user",
        description="Print the nftables ruleset that lets the appliance's user reach only the "
        "scan scope, egress_allow and the fleet's brokers (config.toml); the image loads it "
        "with 'nft -f -' at boot "
        "and whenever config.toml changes.",
    )
    egress.add_argument("--user", default="qey", help="the user it polices (default: qey)")
    egress.set_defaults(func=cmd_egress_policy)

    firewall_apply = sub.add_parser(
        "firewall-apply",
        help="(root) load the actions' firewall table the appliance asked for",
        description="Root's side of the actions' firewall on the image (qey-actions.service): "
        "read actions/firewall.json from the data directory, check it holds only addresses, "
        "load the qey_actions nftables table, and confirm in /run/qey/actions-applied.",
    )
    firewall_apply.set_defaults(func=cmd_firewall_apply)

    route = sub.add_parser(
        "route",
        help="show which agent type a command would go to",
        description="Route a command with the on-device model and print the decision as one "
        "JSON object (command, agent_type or null for no confident match, confidence, "
        "alternatives, provider). With '-', route each line of standard input, loading the "
        "model once.",
    )
    route.add_argument("command", help='the command, or "-" to read one per line from stdin')
    route.add_argument(
        "--device",
        action="append",
        choices=["NPU", "GPU", "CPU"],
        help="device type wanted for the model, most wanted first (default: the board "
        "profile's router.devices)",
    )
    route.add_argument(
        "--plugin",
        metavar="LIBRARY",
        help="plugin execution provider: a library's absolute path or the Python package "
        "that ships it (default: the board profile's router.plugin)",
    )
    route.add_argument(
        "--strict",
        action="store_true",
        help="refuse to run on a device of a type not wanted (no CPU fallback)",
    )
    route.set_defaults(func=cmd_route)

    plan = sub.add_parser(
        "plan",
        help="show the plan a command would run, without running it",
        description="Plan a command as the appliance would (each step's agent type chosen by "
        "the on-device router, its parameters checked against the scope) and print the plan "
        "as a tree, or as JSON with --json. Nothing runs.",
    )
    plan.add_argument("command", help="the command")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(func=cmd_plan)

    emulator = sub.add_parser(
        "display-emulator",
        help="emulate the Neur Lines display on a port",
        description="Speak the display's side of the protocol on PORT and draw what the "
        "display would show: 'pty' (a new pty pair; its path is printed), "
        "'listen://HOST:PORT' (TCP server, e.g. for the sim board or QEMU), a device path or "
        "pyserial URL (socket://HOST:PORT), or 'loop://' (a demo, decoded back).",
    )
    emulator.add_argument("port", metavar="PORT")
    emulator.add_argument("--png", type=Path, help="write the picture to this PNG file")
    emulator.add_argument("--link", type=Path, help="with 'pty': symlink this path to it")
    emulator.add_argument("--baud", type=int, default=115200)
    emulator.add_argument("--frames", type=int, default=0, help="exit after N frames")
    emulator.add_argument("--no-terminal", action="store_true", help="do not draw in the terminal")
    emulator.set_defaults(func=cmd_display_emulator)

    passwd = sub.add_parser(
        "passwd",
        help="set the panel's admin password from this console",
        description="Set the admin password of the web panel, whatever its sign-in throttle "
        "says (the owner's way in when guessers have locked the panel): every session ends "
        "and every counted failure is forgotten. Talks to the running appliance over its "
        "owner-only control socket, or writes the data directory when none runs. Asks twice "
        "on the terminal, or reads one line from standard input with --stdin.",
    )
    passwd.add_argument(
        "--stdin", action="store_true", help="read the new password from standard input"
    )
    passwd.set_defaults(func=cmd_passwd)

    flash = sub.add_parser(
        "flash",
        help="write an OS image to a disk and verify it",
        description="Write IMAGE (the raw .img from ./build.sh image) to TARGET, a block "
        "device or a file, showing progress, then read it back and compare sha256s. Refuses a "
        "mounted device, the disk this computer's root is on, a device smaller than the "
        "image, the image itself (by inode), a file on a kernel file system (/proc, /sys), a "
        "loop device's backing file and anything another process has open; asks before "
        "writing unless --yes.",
    )
    flash.add_argument("image", type=Path, metavar="IMAGE")
    flash.add_argument("target", type=Path, metavar="TARGET")
    flash.add_argument("-y", "--yes", action="store_true", help="do not ask before writing")
    flash.set_defaults(func=cmd_flash)

    update = sub.add_parser(
        "update",
        help="install a signed update bundle, or show both root slots",
        description="qey update BUNDLE: check BUNDLE (signed by this appliance's update key, "
        "for this board, newer than what runs, its contents as signed), write it into the "
        "slot not running and set that slot to be tried at the next boot, a few times at "
        "most; it is committed once the appliance has been healthy on it, and if it never "
        "is, the old slot boots again by itself, with its data. qey update status: both "
        "slots and the last update. gate and boot-check are what the boot runs; apply installs "
        "what the panel handed over.",
    )
    update.add_argument("what", metavar="BUNDLE|status|gate|boot-check|apply")
    update.add_argument(
        "--allow-downgrade", action="store_true", help="install a bundle older than what runs"
    )
    update.add_argument("--reboot", action="store_true", help="reboot into it once installed")
    update.add_argument(
        "--reboot-at", metavar="HH:MM", help="reboot into it at this time of the device's day"
    )
    update.add_argument("--json", action="store_true", help="status as JSON")
    update.add_argument(
        "--healthy-for", type=float, default=60.0, help="gate: seconds of health to commit"
    )
    update.add_argument("--timeout", type=float, default=900.0, help="gate: seconds to wait")
    update.set_defaults(func=cmd_update)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from appliance.startup import RouterLoading

    settings = Settings.load()
    router = RouterLoading(settings)  # first: the model loads while the rest imports
    from appliance.app import Appliance

    try:
        appliance = Appliance(settings, router=router)
    except BaseException:
        # Refused before it took the model (another qey holds the data directory, a bad
        # board profile): exiting while onnxruntime loads in its thread aborts the process
        # (SIGABRT, "terminate called") instead of exiting with the refusal's status.
        router.settle()
        raise

    async def serve() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await appliance.serve()

    asyncio.run(serve())
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from appliance.web.views import JobAccepted

    settings = Settings.load()
    outcome = asyncio.run(_submit(settings, args))
    if isinstance(outcome, JobAccepted):  # not waited for: the running appliance has it
        if args.json:
            print(
                msgspec.json.encode(
                    {**msgspec.to_builtins(outcome), "status": "submitted"}
                ).decode()
            )
        else:
            print(outcome.job_id)
        return 0
    print(msgspec.json.encode(outcome).decode() if args.json else _describe(outcome))
    return 0 if outcome.status in ("done", "running") else 1


async def _submit(settings: Settings, args: argparse.Namespace) -> JobAccepted | JobView:
    from appliance.client import ControlClient, NotRunning

    try:
        async with ControlClient(settings.control_socket) as client:
            accepted = await client.submit(args.command, args.agent)
            if not args.wait:
                return accepted
            async with asyncio.timeout(args.timeout):
                async for event in client.events(accepted.job_id):
                    _progress(event)
            return await client.job(accepted.job_id, wait=args.timeout)
    except NotRunning as err:
        _ensure_no_appliance(settings, err)
    from appliance.app import in_process
    from appliance.web.api import job_view

    async with in_process(settings) as appliance:
        ctx, root, _route = await appliance.submit(args.command, args.agent)
        with appliance.runtime.watch(job_id=ctx.job_id) as watch:

            async def show_progress() -> None:
                async for env in watch:
                    _progress(msgspec.json.decode(msgspec.json.encode(env.event)))

            async with asyncio.timeout(args.timeout), asyncio.TaskGroup() as tg:
                printer = tg.create_task(show_progress())
                await appliance.runtime.wait_task(root)
                printer.cancel()
        await appliance.runtime.commit()
        return await job_view(appliance.runtime, await appliance.runtime.graph.tree(ctx.job_id))


def _ensure_no_appliance(settings: Settings, unreachable: ApplianceError) -> None:
    """Running a job in this process is for when no appliance runs here: one that holds the
    data directory but does not answer is an error to report, not a cue to run beside it."""
    from appliance.datadir import DataDirInUse, holder_of

    holder = holder_of(settings.data_dir)
    if holder is not None:
        raise DataDirInUse(
            f"the appliance on {settings.data_dir} ({holder}) does not answer: {unreachable}"
        )


def _progress(event: dict[str, Any]) -> None:
    kind = event.get("kind")
    if kind == "task.spawned":
        print(
            f"  + {event['agent_type']} {event['task_id']}: {event['objective']}", file=sys.stderr
        )
    elif kind == "task.status":
        print(
            f"  {event['status']}: {event['agent_type']} {event['task_id']} "
            f"{event.get('detail', '')}".rstrip(),
            file=sys.stderr,
        )
    elif kind == "scan.progressed":
        print(f"  scanning {event['target']}: {event['probed']}/{event['total']}", file=sys.stderr)
    elif kind == "handler.crashed":
        print(
            f"  ! {event['agent_type']} {event['task_id']}: {event['error_type']}: "
            f"{event['message']}",
            file=sys.stderr,
        )
    elif kind == "event.refused":
        print(
            f"  refused by {event['agent_type']} {event['task_id']}: {event['message']}",
            file=sys.stderr,
        )


def _describe(job: JobView) -> str:
    head = f"{job.job_id} {job.status}"
    if job.outcome.verdict not in (job.status, "done", "running"):
        head += f" ({job.outcome.verdict})"  # it ended, but not all it asked was done
    result = job.result
    if job.detail:
        head += f": {job.detail}"
    if isinstance(result, dict) and "steps" in result and "ran" in result:
        return head + _describe_plan(result)
    if isinstance(result, dict) and "findings" in result and "hosts_probed" in result:
        open_ports = sum(len(h["open_ports"]) for h in result["open"])
        head += (
            f": {result['hosts_probed']} host(s) probed, {open_ports} open port(s), "
            f"{len(result['findings'])} finding(s)"
        )
        for f in sorted(result["findings"], key=lambda f: (f["host"], f["port"])):
            head += f"\n  [{f['severity']}] {f['host']}:{f['port']} {f['title']}"
        if result.get("failed_targets"):
            head += f"\n  failed targets: {', '.join(result['failed_targets'])}"
    return head


def _describe_plan(report: dict[str, Any]) -> str:
    """A plan's report: what each step did, then what was found."""
    steps, findings = report["steps"], report.get("findings", [])
    text = (
        f": {len(steps)} step(s): {len(report['ran'])} ran, {len(report['skipped'])} skipped, "
        f"{len(report['failed'])} failed, {len(findings)} finding(s)"
    )
    for step in steps:
        reason = f" ({step['reason']})" if step.get("reason") else ""
        text += f"\n  {step['id']} {step['agent_type']}: {step['status']}{reason}"
    for f in sorted(findings, key=lambda f: (f["host"], f["port"])):
        text += f"\n  [{f['severity']}] {f['host']}:{f['port']} {f['title']}"
    return text


def _query_graph(query: Callable[[TaskGraph], Coroutine[Any, Any, T]]) -> T:
    """Run one query against the coordination graph in the data directory."""
    from appliance.runtime import TaskGraph

    return _with_store(lambda store: query(TaskGraph(store)))


def _query_store(query: Callable[[Any], T]) -> T:
    """Run one read of the data directory's database on the store's thread."""
    return _with_store(lambda store: store.read(query))


def _with_store(use: Callable[[Store], Coroutine[Any, Any, T]]) -> T:
    """The data directory's store, opened for one use (a running appliance may be writing
    at the same time: WAL lets both)."""
    from appliance.runtime import Store

    settings = Settings.load()
    if not settings.db_path.exists():
        raise ValueError(f"no appliance data in {settings.data_dir} yet")
    store = Store(settings.db_path)
    try:
        return asyncio.run(use(store))
    finally:
        store.close()


def cmd_tree(args: argparse.Namespace) -> int:
    from appliance.runtime import render_tree

    tree = _query_graph(lambda graph: graph.tree(args.job_id))
    print(render_tree(tree, with_status=args.status))
    return 0


def cmd_chain(args: argparse.Namespace) -> int:
    from appliance.runtime import render_chain

    tree, chain = _query_graph(lambda graph: graph.chain(args.task_id))
    print(render_chain(chain, tree.command))
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    for job in _query_graph(lambda graph: graph.jobs(args.limit)):
        mark = " (autonomous)" if job["autonomous"] else ""
        print(f"{job['job_id']}  {job['command']}{mark}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from datetime import datetime

    from appliance.runtime.audit import read_entries

    entries = _query_store(lambda db: read_entries(db, args.job_id, args.task, args.limit))
    if not entries:
        raise ValueError(f"no handled events recorded for job {args.job_id!r}")
    for e in entries:
        if args.json:
            print(msgspec.json.encode(e).decode())
            continue
        when = datetime.fromtimestamp(e.at).strftime("%H:%M:%S.%f")[:-3]
        body = msgspec.json.encode(e.event).decode()
        print(f"{when}  {e.agent_type}/{e.task_id}  {e.kind}  {e.outcome}  {body}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from appliance.reports import console

    return console.run(Settings.load(), args.job_id, args.format, args.output)


def cmd_approvals(args: argparse.Namespace) -> int:
    from appliance.actions import console

    return console.run(
        Settings.load(), args.verb, args.action_id, pending_only=True, as_json=args.json
    )


def cmd_actions(args: argparse.Namespace) -> int:
    from appliance.actions import console

    return console.run(Settings.load(), "list", None, pending_only=False, as_json=args.json)


def cmd_undo(args: argparse.Namespace) -> int:
    from appliance.actions import console

    return console.run(
        Settings.load(), "undo", args.action_id, pending_only=False, as_json=args.json
    )


def cmd_schedules(args: argparse.Namespace) -> int:
    from appliance.schedules import console

    return console.run(Settings.load(), args.action, args.schedule_id, as_json=args.json)


def cmd_egress_policy(args: argparse.Namespace) -> int:
    from appliance.egress import ruleset

    settings = Settings.load()
    allow = [*settings.egress_allow, *settings.fleet.broker_addresses()]
    print(ruleset(settings.scope, allow, args.user), end="")
    return 0


def cmd_firewall_apply(args: argparse.Namespace) -> int:
    from appliance.actions.handoff import apply_request

    entries = apply_request(Settings.load().data_dir)
    print(
        f"qey actions firewall: {len(entries.blocked)} blocked, "
        f"{len(entries.quarantined)} quarantined, {len(entries.allowed)} allow-listed"
    )
    return 0


def cmd_fleet_status(args: argparse.Namespace) -> int:
    from appliance.client import ControlClient

    async def ask() -> FleetStatus:
        async with ControlClient(Settings.load().control_socket) as client:
            return await client.fleet()

    status = asyncio.run(ask())
    if not status.enabled:
        print("qey fleet: this device is not in a fleet ([fleet] servers in config.toml)")
        return 0
    link = f"connected to {status.server}" if status.connected else "NOT connected"
    print(f"{status.name}: {link}" + (f" ({status.problem})" if status.problem else ""))
    print(f"  its key: {status.key}")
    for d in status.devices:
        mark = "*" if d.this else " "
        print(
            f"{mark} {d.name:<16} {d.state:<5} seen {d.last_seen_s:>5.1f}s ago  {d.health:<8} "
            f"v{d.version}  load {d.load}  scope {', '.join(d.scope) or '-'}"
        )
    if status.routed_elsewhere:
        print(f"  commands here also reach: {', '.join(status.routed_elsewhere)}")
    return 0


def cmd_fleet_key(args: argparse.Namespace) -> int:
    from appliance.datadir import private_dir
    from appliance.fleet.keys import device_seed, public_key

    data_dir = Settings.load().data_dir
    private_dir(data_dir)
    print(public_key(device_seed(data_dir)))
    return 0


def cmd_fleet_server_config(args: argparse.Namespace) -> int:
    from appliance.fleet.role import broker_config, write_config
    from appliance.hal.board import load_board

    settings = Settings.load()
    server = settings.fleet.server
    if args.if_role:
        print(f"qey fleet: the fleet-server role is {'on' if server else 'off'}")
        return 0 if server else 1
    store = Path(args.store_dir) if args.store_dir else settings.data_dir / "fleet-broker"
    config = broker_config(settings.fleet, load_board(settings.board), settings.data_dir, store)
    if args.out:
        write_config(config, Path(args.out))
    else:
        print(config.decode())
    return 0


def cmd_fleet_cluster_secret(args: argparse.Namespace) -> int:
    from appliance.datadir import private_dir
    from appliance.fleet.role import new_cluster_secret

    data_dir = Settings.load().data_dir
    private_dir(data_dir)
    print(new_cluster_secret(data_dir))
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    from appliance.extensions.loader import with_builtin
    from appliance.runtime import accepted_kinds

    types, extensions = with_builtin(Settings.load().data_dir)
    for cls in types:
        print(f"{cls.name}: {cls.description}\n  accepts: {', '.join(accepted_kinds(cls))}")
        if cls.name in extensions.origins:
            print(f"  extension: {extensions.origins[cls.name]}")
    return 0


def cmd_display_emulator(args: argparse.Namespace) -> int:
    from appliance.hal.display.emulator import emulate

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            emulate(
                args.port,
                png=args.png,
                terminal=not args.no_terminal and sys.stdout.isatty(),
                baud=args.baud,
                link_path=args.link,
                frames=args.frames,
            )
        )
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    from appliance.extensions.loader import with_builtin
    from appliance.hal.board import load_board
    from appliance.router import Plugin, Router
    from appliance.startup import router_settings

    app_settings = Settings.load()
    settings = router_settings(load_board(app_settings.board), app_settings)
    if args.device:
        settings = msgspec.structs.replace(settings, devices=args.device)
    if args.plugin:
        named = args.plugin
        plugin = Plugin(path=named) if named.startswith("/") else Plugin(package=named)
        settings = msgspec.structs.replace(settings, plugin=plugin)
    if args.strict:
        settings = msgspec.structs.replace(settings, strict=True)
    router = Router(settings)
    for cls in with_builtin(app_settings.data_dir)[0]:
        router.add_type(cls)
    commands = sys.stdin if args.command == "-" else [args.command]
    for line in commands:
        if line.strip():
            decision = router.route_blocking(line.strip())
            sys.stdout.write(msgspec.json.encode(decision).decode() + "\n")
            sys.stdout.flush()  # one answer per line as it comes, for a pipe
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from datetime import datetime

    from appliance.extensions.loader import with_builtin
    from appliance.hal.board import load_board
    from appliance.planner.plan import encode_plan, render_plan
    from appliance.planner.planner import Planner
    from appliance.router import RouteDecision, Router
    from appliance.scope import Scope
    from appliance.startup import router_settings

    app_settings = Settings.load()
    router = Router(router_settings(load_board(app_settings.board), app_settings))
    types = {cls.name: cls for cls in with_builtin(app_settings.data_dir)[0]}
    for cls in types.values():
        router.add_type(cls)
    scope = Scope(app_settings.scope, confirm_large=app_settings.scope_confirm_large)

    async def route_many(clauses: Sequence[str]) -> list[RouteDecision]:
        return router.route_many(clauses) if clauses else []

    planner = Planner(
        route_many,
        threshold=router.settings.threshold,
        agent_class=lambda name: types[name],
        check_target=scope.check,
        now=datetime.now,
        names=app_settings.names,
    )
    plan = asyncio.run(planner.plan(args.command))
    if args.json:
        sys.stdout.write(encode_plan(plan).decode() + "\n")
    else:
        print(render_plan(plan))
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    from appliance.web.passwords import check_new_password

    password = _new_password(from_stdin=args.stdin)
    check_new_password(password)  # WeakPassword says why; nothing is changed
    settings = Settings.load()
    where = asyncio.run(_set_admin_password(settings, password))
    print(f"qey: the admin password is set ({where}); every panel session has ended")
    return 0


def _new_password(*, from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ValueError("no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise ValueError("standard input is not a terminal: add --stdin to read it from there")
    import getpass

    password = getpass.getpass("New admin password: ")
    if getpass.getpass("Repeat it: ") != password:
        raise ValueError("the two passwords differ; nothing was changed")
    return password


async def _set_admin_password(settings: Settings, password: str) -> str:
    """Through the running appliance (it ends the sessions and clears the throttle it holds),
    else straight into the data directory."""
    from appliance.client import ControlClient, NotRunning

    try:
        async with ControlClient(settings.control_socket) as client:
            await client.set_admin_password(password)
            return "by the running appliance"
    except NotRunning as unreachable:
        _ensure_no_appliance(settings, unreachable)
    from appliance.datadir import DataDirLock
    from appliance.web.console import set_password_offline

    # held while writing, so an appliance starting meanwhile waits its turn (it refuses to
    # start; a running one holding the directory was refused above, naming its pid)
    lock = DataDirLock.acquire(settings.data_dir)
    try:
        await asyncio.to_thread(set_password_offline, settings.data_dir, password)
    finally:
        lock.release()
    return f"in {settings.data_dir}; no appliance was running"


def cmd_flash(args: argparse.Namespace) -> int:
    from appliance.flash import TargetInfo, flash

    def confirm(info: TargetInfo, size: int) -> bool:
        if args.yes:
            return True
        if not sys.stdin.isatty():
            print("qey: not a terminal, so no one can confirm; add --yes", file=sys.stderr)
            return False
        answer = input(
            f"Write {args.image} ({size / 1e6:.0f} MB) to {args.target} ({info.description})? "
            "Everything on it will be lost. Type yes to go on: "
        )
        return answer.strip().lower() == "yes"

    def progress(phase: str, done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        end = "\n" if done >= total else ""
        print(
            f"\r  {phase:6} {pct:3d}% {done // 2**20}/{total // 2**20} MiB",
            end=end,
            file=sys.stderr,
            flush=True,
        )

    sha = flash(args.image, args.target, confirm=confirm, progress=progress)
    print(f"{args.target}: written and verified, sha256 {sha}")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from appliance.update import console

    settings = Settings.load()
    data_dir = settings.data_dir
    if args.what == "status":
        view = console.status(data_dir)
        if args.json:
            print(msgspec.json.encode(view).decode())
            return 0
        for slot in view.slots:
            marks = [
                m for m, on in (("running", slot.booted), ("boots next", slot.boots_next)) if on
            ]
            print(
                f"slot {slot.slot}: {slot.version or 'no version recorded'}, {slot.state}"
                + (f" ({', '.join(marks)})" if marks else "")
            )
        last = view.last
        if last is None:
            print("last update: none")
        else:
            print(f"last update: {last.version} into slot {last.to_slot}: {last.state}")
            if last.reason:
                print(f"  {last.reason}")
        return 0
    if args.what == "apply":  # publishes the slots itself, before it hands back
        console.apply_request(data_dir)  # it says what it did before it reboots
        return 0
    try:
        return _update_step(args, settings, data_dir)
    finally:  # what changed, for the panel (which may read neither the ESP nor RAUC)
        console.publish_slots(data_dir)


def _update_step(args: argparse.Namespace, settings: Settings, data_dir: Path) -> int:
    from appliance.update import console, handoff

    if args.what == "boot-check":
        print(f"qey update: {console.boot_check(data_dir)}")
        return 0
    if args.what == "gate":
        socket = settings.control_socket
        print(
            "qey update: "
            + console.gate(data_dir, socket, healthy_for_s=args.healthy_for, timeout_s=args.timeout)
        )
        return 0
    if args.reboot_at is not None:
        handoff.time_of_day(args.reboot_at)  # before minutes of checking and writing
    rec = console.install(Path(args.what), data_dir, allow_downgrade=args.allow_downgrade)
    print(
        f"qey update: version {rec.version} is in slot {rec.to_slot}; it is tried at the next "
        f"boot and committed once healthy (slot {rec.from_slot} boots again if it never is)"
    )
    if args.reboot_at is not None:
        print(f"qey update: {console.schedule_reboot(args.reboot_at)}")
    elif args.reboot:
        console.publish_slots(data_dir)
        subprocess.run(["systemctl", "reboot"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
