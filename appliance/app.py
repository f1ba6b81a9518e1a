"""The one place that wires real parts together: store, runtime, agents, control API."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

import msgspec
from aiohttp import web

from appliance import __version__, inventory
from appliance.actions.firewall import Entries
from appliance.actions.handoff import loader_for
from appliance.actions.service import expire_approvals
from appliance.agents import register_builtin
from appliance.agents.messages import PlanRequested
from appliance.agents.netwatch import start_watching
from appliance.datadir import DataDirLock, private_dir, private_files, unlink_if_same
from appliance.errors import ActionFailed, AgentTypeFailed, BadCommand, UnknownAgentType
from appliance.events import JobContext, TaskRef
from appliance.extensions.loader import load_extensions, register_extensions
from appliance.fleet.keys import device_seed
from appliance.fleet.link import FleetLink
from appliance.fleet.typecards import TypeCard
from appliance.hal.addresses import PanelAddresses
from appliance.hal.board import load_board
from appliance.hal.hardware import Hardware
from appliance.planner.plan import Plan
from appliance.planner.planner import Planner
from appliance.router import Candidate, Placement, RouteDecision, Router
from appliance.router.router import Reason, phrases_from
from appliance.runtime import Runtime, Store, running
from appliance.schedules.cadence import describe
from appliance.schedules.scheduler import Scheduler
from appliance.schedules.store import Schedules, following
from appliance.scope import Scope
from appliance.settings import Settings, write_scope
from appliance.startup import (
    RouterLoading,
    StartupClock,
    allow_open_files,
    process_age,
    router_settings,
)
from appliance.supervisor import ConsensusTracker, Supervisor
from appliance.update import record as update_record
from appliance.update.entries import boot_slot
from appliance.web.api import make_api, overall_health
from appliance.web.approvals import APPROVALS_PAGE, add_action_routes
from appliance.web.capabilities import DeviceStatus, RouterStatus
from appliance.web.console import Console, add_console_routes
from appliance.web.credentials import Credentials
from appliance.web.fleet import FLEET, FLEET_INVENTORY, FLEET_ROUTES
from appliance.web.keys import CREDENTIALS, FAILED_EXTENSIONS, NAMES
from appliance.web.panel import Panel, make_panel
from appliance.web.routes import add_routes
from appliance.web.tls import ensure_certificate, needs_tls

log = logging.getLogger(__name__)


class Submitted(tuple[JobContext, TaskRef, RouteDecision | None]):
    """A started job: its ids, its root task, and the router's decision (None when the
    caller named the agent type); ``plan`` is the planner's plan for the command (None when
    the caller named the agent type), and ``schedule`` the schedule it created, if any. A
    3-tuple, so ``job, root, route = await submit(...)`` reads as it always has."""

    plan: Plan | None
    schedule: msgspec.Struct | None

    def __new__(
        cls,
        job: JobContext,
        root: TaskRef,
        route: RouteDecision | None,
        plan: Plan | None = None,
        schedule: msgspec.Struct | None = None,
    ) -> Submitted:
        self = super().__new__(cls, (job, root, route))
        self.plan = plan
        self.schedule = schedule
        return self

    @property
    def job(self) -> JobContext:
        return self[0]

    @property
    def root(self) -> TaskRef:
        return self[1]

    @property
    def route(self) -> RouteDecision | None:
        return self[2]


class Appliance:
    def __init__(
        self,
        settings: Settings,
        router: Router | RouterLoading | None = None,
        load_firewall: Callable[[Entries], None] | None = None,
    ) -> None:
        """``router``: a router, one loading beside the imports (``qey run``), or None to
        load one here. ``load_firewall`` changes the actions' firewall (default: nft here,
        or root's unit on the image; see ``actions/handoff.py``)."""
        self.startup = StartupClock()
        self.startup.phases["imports"] = process_age() or 0.0
        self.settings = settings
        self.board = load_board(settings.board)  # a bad profile fails here, naming the field
        allow_open_files()  # scans hold hundreds of connections at once
        private_dir(settings.data_dir)
        # one appliance per data directory: before the store is opened or the socket touched
        self._lock = DataDirLock.acquire(settings.data_dir)
        try:
            # a missing or corrupt model, or a strict board without its NPU, fails here
            if isinstance(router, RouterLoading):
                self.router = router.result()
                self.startup.beside["model"] = router.seconds
            else:
                self.router = router or Router(router_settings(self.board, settings))
            self.startup.mark("model")
            self.store = Store(settings.db_path)
        except BaseException:
            self._lock.release()
            raise
        self.runtime = Runtime(self.store)
        self.supervisor = Supervisor(self.runtime)
        self.runtime.on_agent_type(self.router.add_type)
        self.runtime.register(ConsensusTracker)
        builtins = register_builtin(
            self.runtime, settings, load_firewall or loader_for(settings.data_dir)
        )
        self.scope, self.actions = builtins.scope, builtins.actions
        # after the built-in types, each in isolation: a broken one is said, the rest start
        self.extensions = load_extensions(
            settings.data_dir, reserved=[cls.name for cls in self.runtime.agent_types]
        )
        register_extensions(self.runtime, self.extensions, self.scope, settings)
        # beside the jobs they start, in the same database; fired by serve()'s Scheduler
        self.schedules = Schedules(self.store, self.runtime.clock)
        self._embedding: set[asyncio.Task[None]] = set()  # the fleet's types, for the router
        self._console: Console | None = None  # the panel's, for qey passwd, once it is made
        self.fleet = self._fleet_link()  # None: a single device, as by default
        if self.fleet is not None:  # a command may name what another device reaches
            self.scope.elsewhere = self.fleet.placement.covers
            self.fleet.types.on_change(self._route_fleet_types)  # or what it runs
        self.planner = Planner(
            self._route_clauses,
            threshold=self.router.settings.threshold,
            agent_class=self.runtime.agent_class,
            describe=self._describe,
            check_target=lambda target: self.scope.check_reachable(target),
            now=lambda: datetime.fromtimestamp(self.runtime.clock.now()),
            names=settings.names,
        )
        self.startup.mark("store and agents")

    async def submit(
        self, command: str, agent_type: str | None = None, *, autonomous: bool = False
    ) -> Submitted:
        """Start a job for a command. Without an agent type the planner makes a plan of it
        (the router picks each step's type among all registered ones); nothing it can place
        raises NoConfidentMatch naming what it understood and the candidates. A one-step plan
        starts that type's job directly; if the type can't parse the command, or has been
        marked failed by the supervisor, the next candidate above the threshold takes it.
        Any other plan goes to the type that runs plans, which also hands a step its type
        refuses to the next candidate. ``autonomous``: the appliance runs it on its own (a
        schedule's firing): the job is recorded so, and it never makes a schedule."""
        if agent_type is not None:
            return Submitted(*self.runtime.submit(command, agent_type, autonomous=autonomous), None)
        plan, routes = await self.planner.plan_and_routes(command)
        if plan.schedule is not None:
            if not autonomous:
                return await self._submit_schedule(command, plan)
            plan = msgspec.structs.replace(plan, schedule=None, scheduled=False)  # a firing
        if plan.direct:
            first = routes[0]
            route = (
                msgspec.structs.replace(first, command=command)
                if first.agent_type == plan.steps[0].agent_type
                else None
            )
            return self._submit_direct(command, plan, route, autonomous=autonomous)
        runner = self._plan_runner()
        job, root = self.runtime.submit(
            command, runner, start=PlanRequested(plan=plan), autonomous=autonomous
        )
        return Submitted(job, root, self._plan_route(command, plan, runner), plan)

    def _submit_direct(
        self,
        command: str,
        plan: Plan,
        route: RouteDecision | None,
        *,
        autonomous: bool = False,
    ) -> Submitted:
        """A one-step plan as its type's own job; ``route`` is the router's decision for
        the command (as before the planner), or None to describe the plan's."""
        step = plan.steps[0]
        route = route or self._plan_route(command, plan, step.agent_type)
        first_error: BadCommand | AgentTypeFailed | None = None
        candidates = [step.agent_type, *step.fallbacks]
        for i, candidate in enumerate(candidates):
            try:
                # the rest take it too if this type's handler refuses it later
                started = self.runtime.submit(
                    command, candidate, autonomous=autonomous, fallbacks=candidates[i + 1 :]
                )
                return Submitted(*started, route, plan)
            except (BadCommand, AgentTypeFailed) as err:
                log.info("router: %s can't take %r: %s", candidate, command, err)
                first_error = first_error or err
        assert first_error is not None
        raise first_error

    async def _submit_schedule(self, command: str, plan: Plan) -> Submitted:
        """A scheduled command makes a schedule of the command without its schedule phrase;
        the job that asked for it is recorded (its plan, not run now) and each firing is
        linked to it. A cadence that would never fire again is refused before anything. The
        schedule's row is written off the event loop (a synchronous=FULL commit waits for the
        disk); the scheduler hears of it through its thread-safe listener."""
        assert plan.schedule is not None
        if following(plan.schedule, self.runtime.clock.now()) is None:
            raise BadCommand(f"{describe(plan.schedule)} has already passed: it would never run")
        runner = self._plan_runner()
        job, root = self.runtime.submit(command, runner, start=PlanRequested(plan=plan))
        record = await asyncio.to_thread(
            self.schedules.add, plan.runs, plan.schedule, job_id=job.job_id
        )
        return Submitted(job, root, self._plan_route(command, plan, runner), plan, record)

    def _plan_runner(self) -> str:
        """The registered type that runs plans: the one whose handlers take PlanRequested."""
        for cls in self.runtime.agent_types:
            if PlanRequested in cls.handlers and not cls.internal:
                return cls.name
        raise BadCommand("no agent type that runs plans is registered")

    def _plan_route(self, command: str, plan: Plan, agent_type: str) -> RouteDecision:
        """The route the API and CLI show: the type that takes the job, and why."""
        reason: Reason = "nearest"
        if len(plan.steps) > 1:
            reason = "multi-step"
        elif plan.schedule is not None:
            reason = "scheduled"
        elif plan.steps[0].when is not None:
            reason = "conditional"
        return RouteDecision(
            command=command,
            agent_type=agent_type,
            confidence=min(s.confidence for s in plan.steps),
            alternatives=[Candidate(agent_type=t, confidence=0.0) for t in plan.steps[0].fallbacks]
            if reason == "nearest"
            else [],
            provider=self.router.provider,
            reason=reason,
        )

    async def _route_clauses(self, clauses: Sequence[str]) -> list[RouteDecision]:
        if not clauses:
            return []
        return await asyncio.to_thread(self.router.route_many, clauses)

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        """Run the appliance until cancelled: the runtime plus the control API on a socket
        only this user can open (the CLI's way in; nothing listens on the network)."""
        sock = self.settings.control_socket
        sock.unlink(missing_ok=True)  # a dead appliance's: we hold the lock, so none runs
        bound: os.stat_result | None = None
        api = make_api(self.runtime, self.submit, self.schedules)
        add_console_routes(api, lambda: self._console)  # qey passwd; never on the panel
        add_action_routes(api, self.actions, surface="console")
        add_routes(api, FLEET_ROUTES)  # the panel serves them with its own
        self._add_fleet(api)
        runner = web.AppRunner(api, access_log=None)
        await runner.setup()
        try:
            await asyncio.to_thread(self._restore_firewall)
            async with running(self.runtime), asyncio.TaskGroup() as tg:
                hardware = self._hardware()
                self.actions.show_on_display = hardware.display.show_notice
                hardware.display.status_extra = lambda: inventory.serious(self.runtime.knowledge)
                panel, setup_token = self._panel(hardware)
                tg.create_task(
                    expire_approvals(self.actions, self.runtime.clock), name="qey-approvals"
                )
                tg.create_task(hardware.run(), name="qey-hardware")
                tg.create_task(self.supervisor.run(), name="qey-supervisor")
                tg.create_task(self._scheduler().run(), name="qey-scheduler")
                if self.fleet is not None:
                    tg.create_task(_in_fleet(self.fleet), name="qey-fleet")
                if panel is not None:
                    tg.create_task(panel.run(), name="qey-panel")
                self.startup.mark("runtime")
                await self.router.prepare()
                self.startup.mark("descriptions")
                with private_files(0o177):
                    await web.UnixSite(runner, str(sock)).start()
                bound = sock.stat()
                print(
                    f"qey ready {__version__} {boot_slot()} data={self.settings.data_dir} "
                    f"scope={','.join(self.settings.scope)} "
                    f"router={self.router.placement.summary()}",
                    flush=True,
                )
                addresses: PanelAddresses | None = None
                if panel is not None:
                    addresses = await _announce(panel, setup_token)
                    self.startup.mark("panel")
                print(f"qey {self.startup.summary()}", flush=True)
                show_token = None
                if panel is not None and setup_token is not None:
                    # whoever stands at the device may set it up, and needs to know where
                    show_token = partial(_show_setup_token, hardware, panel, setup_token, addresses)
                    show_token()
                if addresses is not None:
                    tg.create_task(addresses.watch(show_token), name="qey-panel-addresses")
                # READY only now: runtime, router, control socket and panel are all up
                self.supervisor.ready(f"qey ready {__version__} {boot_slot()}")
                if ready is not None:
                    ready.set()
                await asyncio.Event().wait()
        finally:
            self.supervisor.stopping()
            await runner.cleanup()
            if bound is not None:
                unlink_if_same(sock, bound)  # only the socket this process bound
            self.close()
            # after the last commit: a console that shows this lost nothing on the way down
            print("qey stopped: store closed", flush=True)

    def _scheduler(self) -> Scheduler:
        """Fires the schedules: each firing is the stored command, submitted as an
        autonomous job through ``submit`` (planned and routed like any command)."""

        async def fire(command: str) -> Submitted:
            return await self.submit(command, autonomous=True)

        return Scheduler(self.schedules, fire, self.runtime.record, self.runtime.clock)

    def close(self) -> None:
        """Close the store, then let the data directory go: the next appliance may start."""
        self.store.close()
        self._lock.release()

    def _restore_firewall(self) -> None:
        """The actions' firewall as the applied blocks left it (a reboot empties nftables).
        Without the right to change it (CAP_NET_ADMIN) the appliance still starts, saying so;
        each approval then fails, recorded, rather than claim a block it did not make."""
        try:
            self.actions.restore()
        except ActionFailed as err:
            log.warning("actions: %s", err)
            print(f"qey actions: {err}", flush=True)

    def _panel(self, hardware: Hardware) -> tuple[Panel | None, str | None]:
        """The admin panel, where the board (or ``web_listen``) lets it listen, and the
        one-time setup token while no admin password is set (None once it is)."""
        listen = self.settings.web_listen
        if listen is None:
            listen = self.board.web.listen
        if not listen:
            return None, None
        credentials = Credentials(self.settings.data_dir)
        app = make_panel(
            self.runtime,
            self.submit,
            credentials,
            router=router_status(self.router.placement),
            route=self.router.route,
            plan=self.planner.plan,
            device=_BoardView(hardware, self.settings.data_dir),
            scope=_LiveScope(self.settings, self.scope),
            schedules=self.schedules,
            # the setup token is spent: its notice leaves the display at once
            on_configured=lambda: hardware.display.show_notice(""),
        )
        app[FAILED_EXTENSIONS] = self.extensions.failed  # the status API lists them
        app[NAMES] = self.settings.names  # the home and device pages name what they know
        add_action_routes(app, self.actions, surface="panel")
        add_routes(app, APPROVALS_PAGE)
        self._add_fleet(app)
        panel = Panel(app, listen, ssl_context=_panel_tls(self.settings.data_dir, listen))
        self._console = panel.console
        return panel, credentials.new_setup_token()

    def _route_fleet_types(self, came: Sequence[TypeCard], went: Sequence[str]) -> None:
        """The router follows the types only other devices run: a command for one becomes
        a job here whose root runs there (``Runtime.submit``)."""
        for card in came:
            phrases = phrases_from(card.description, card.capabilities, card.examples)
            self.router.add_phrases(card.name, phrases)
        for name in went:
            self.router.remove_type(name)
        # embedded now, in a thread, so the next command does not wait for its phrases
        embedding = asyncio.get_running_loop().create_task(self.router.prepare())
        self._embedding.add(embedding)
        embedding.add_done_callback(self._embedding.discard)

    def _describe(self, agent_type: str) -> str | None:
        """What a type says of itself, whether this device or only another one runs it."""
        try:
            return self.runtime.agent_class(agent_type).description
        except UnknownAgentType:
            card = self.fleet.types.card(agent_type) if self.fleet is not None else None
            return card.description if card is not None else None

    def _fleet_link(self) -> FleetLink | None:
        """This device's link to the fleet if ``[fleet]`` names a broker; its key is made
        on the first start in fleet mode, so a single device never has one."""
        fleet = self.settings.fleet
        if not fleet.enabled:
            return None
        runtime = self.runtime
        return FleetLink(
            fleet,
            device_seed(self.settings.data_dir),
            runtime,
            version=__version__,
            scope=lambda: list(self.settings.scope),
            health=lambda: overall_health(runtime),
            load=lambda: sum(i.inflight + i.queued for i in runtime.instances()),
        )

    def _add_fleet(self, app: web.Application) -> None:
        """What the fleet routes show (without it, that this device is in no fleet)."""
        if self.fleet is not None:
            app[FLEET] = self.fleet.status
            app[FLEET_INVENTORY] = self.fleet.inventories

    def _hardware(self) -> Hardware:
        """The board's LEDs, display and hot-plug (the sim profile on a host); device events
        go to the network watcher, which rescans the scope on its own when the network
        changes."""
        return Hardware(
            self.board,
            self.runtime,
            clock=self.runtime.clock,
            hotplug_sink=start_watching(self.runtime),
            appliance_version=__version__,
            update_phase=partial(update_record.phase, self.settings.data_dir, boot_slot()),
        )


async def _in_fleet(link: FleetLink) -> None:
    """The link for as long as the appliance runs: it connects (and reconnects) on its own."""
    await link.start()
    try:
        await asyncio.Event().wait()
    finally:
        await link.close()


async def _announce(panel: Panel, setup_token: str | None) -> PanelAddresses | None:
    """Say where the panel is and, before the first sign-in, the setup token (console only:
    only its hash is stored). The addresses are watched from then on (hal/addresses.py)."""
    try:
        async with asyncio.timeout(10):
            await panel.listening.wait()
    except TimeoutError:
        log.error("panel: not listening after 10 s")
        return None
    addresses = PanelAddresses(panel.urls, partial(print, flush=True))
    addresses.refresh()
    if setup_token is not None and addresses.current:
        print(
            f"qey setup token {setup_token} (open {addresses.current[0]}setup to set the "
            "admin password)",
            flush=True,
        )
    return addresses


def _show_setup_token(
    hardware: Hardware, panel: Panel, token: str, addresses: PanelAddresses | None
) -> None:
    """The setup token on the display, with where to type it once the panel has an address
    reachable from elsewhere; nothing once the token is spent (its notice is cleared then)."""
    if panel.app[CREDENTIALS].configured:
        return
    where = addresses.from_elsewhere if addresses is not None else None
    hardware.display.show_notice(f"setup token {token}" + (f" at {where}setup" if where else ""))


def _panel_tls(data_dir: Path, listen: list[str]) -> ssl.SSLContext | None:
    """TLS whenever the panel listens beyond loopback (the device's :443): with the
    certificate in the data directory, made for this device on first start if there is
    none. Plain HTTP only on loopback (the sim board)."""
    if not needs_tls(listen):
        return None
    cert, key = ensure_certificate(data_dir, [a.rsplit(":", 1)[0] for a in listen])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def router_status(placement: Placement) -> RouterStatus:
    """The router's placement as the panel's layer knows it (web/ may not import the router)."""
    return RouterStatus(
        provider=placement.provider,
        device=placement.device,
        vendor=placement.vendor,
        wanted=placement.wanted,
        library=placement.library,
        fallback=placement.fallback,
        nodes=placement.nodes,
        nodes_on_provider=placement.nodes_on_provider,
    )


class _BoardView:
    """The panel's view of the board: LED state and the display link (web/ may not import
    the hardware layer, so the app reads it for the panel)."""

    def __init__(self, hardware: Hardware, data_dir: Path) -> None:
        self._hw = hardware
        self._data_dir = data_dir

    def status(self) -> DeviceStatus:
        hw = self._hw
        return DeviceStatus(
            board=hw.board.name,
            simulated=hw.board.simulated,
            leds=hw.status.state,
            load=hw.status.load,
            display_connected=hw.display.connected.is_set(),
            display_frames_sent=hw.display.stats.frames_sent,
            display_text=[t for _, t in sorted(hw.display.mirror.texts.items()) if t],
            root_read_only=bool(os.statvfs("/").f_flag & os.ST_RDONLY),
            data_free_bytes=_free_bytes(self._data_dir),
        )

    def display_png(self) -> bytes | None:
        return self._hw.display.latest_png()


def _free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


class _LiveScope:
    """The scan scope the agents check, changed in place and saved to config.toml."""

    def __init__(self, settings: Settings, scope: Scope) -> None:
        self._settings = settings
        self._scope = scope

    def get(self) -> list[str]:
        return [str(n) for n in self._scope.networks]

    def set(self, networks: list[str], *, confirm_large: bool = False) -> list[str]:
        # BadCommand naming a bad entry; nothing changed
        checked = Scope(networks, confirm_large=confirm_large)
        names = [str(n) for n in checked.networks]
        write_scope(self._settings.data_dir, names, confirm_large=checked.has_large)
        self._scope.networks = checked.networks
        self._settings.scope = names
        self._settings.scope_confirm_large = checked.has_large
        return names


@asynccontextmanager
async def in_process(
    settings: Settings, load_firewall: Callable[[Entries], None] | None = None
) -> AsyncIterator[Appliance]:
    """An appliance running inside this process (no control socket) for one-off commands."""
    appliance = Appliance(settings, load_firewall=load_firewall)
    try:
        async with running(appliance.runtime):
            await appliance.router.prepare()
            yield appliance
    finally:
        appliance.close()
