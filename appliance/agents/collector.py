"""The data collector: a real TCP connect scan of one in-scope target, then analysis per host."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence

from appliance import inventory
from appliance.agents.coordinator import parse_ports
from appliance.agents.messages import (
    AnalysisReport,
    AnalysisRequested,
    ChunkScanned,
    ChunkScanRequested,
    HostPorts,
    ScanProgressed,
    ScanReport,
    ScanRequested,
    merged_facts,
)
from appliance.agents.portscan import probe_window, scan
from appliance.errors import BadCommand
from appliance.events import TopicRef, TypeRef
from appliance.runtime import Agent, Context, NoState, StepInput, StepParams
from appliance.scope import Scope, hosts_of, parse_network
from appliance.settings import Settings

PROGRESS = TopicRef("progress")

HostRecord = dict[str, list[int]]

CHUNK_HOSTS = 256
"""A target with more hosts is scanned in slices of this many by the collectors' pool."""

# An address, a network or "localhost", and "port(s) 22,80-90" anywhere in a command.
_TARGET = re.compile(
    r"(?<![\w.])(?:\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?|[0-9a-f:]*::[0-9a-f:]*(?:/\d{1,3})?"
    r"|localhost)(?![\w.])",
    re.IGNORECASE,
)
_PORTS = re.compile(r"\bports?\s+(?P<ports>\d+(?:\s*(?:-|,|and)\s*\d+)*)", re.IGNORECASE)
SCAN_USAGE = "say: scan <address or network> [ports 22,80-90]"


def targets_in(command: str) -> list[str]:
    """The addresses and networks a command names, in order, each once."""
    return list(dict.fromkeys(m.group(0) for m in _TARGET.finditer(command)))


def ports_in(command: str) -> list[int]:
    """The ports after "port"/"ports" ("ports 22, 80-90 and 443"); [] when none are named."""
    match = _PORTS.search(command)
    return parse_ports(re.sub(r"\s*and\s*", ",", match["ports"])) if match else []


def one_target(command: str, usage: str) -> str:
    """The single address or network a one-target command names, checked for form."""
    targets = targets_in(command)
    if not targets:
        raise BadCommand(f"no address or network in {command!r}; {usage}")
    if len(targets) > 1:
        raise BadCommand(
            f"{command!r} names {len(targets)} targets ({', '.join(targets)}), but this takes "
            "one; ask for a posture analysis to cover several"
        )
    parse_network(targets[0])  # a malformed address fails here, with its reason
    return targets[0]


def parse_scan(command: str) -> ScanRequested:
    """The target and ports a scan command names; no ports means the configured default
    ports (an empty list). BadCommand says what is missing."""
    return ScanRequested(target=one_target(command, SCAN_USAGE), ports=ports_in(command))


class DataCollector(Agent):
    reach = "target"  # ScanRequested.target: in a fleet, a device that covers it scans it
    name = "data_collector"
    description = (
        "Collects data about hosts and networks: scans an address or network for open TCP "
        "ports, discovers which hosts are up, and lists the services they expose. Gathers "
        "facts only; it does not judge them."
    )
    capabilities = (
        "scan ports",
        "scan a host or a network",
        "port scan of a host",
        "find the open ports on a host",
        "which ports are open",
        "discover hosts on a network",
        "which hosts are up on the subnet",
        "find live hosts and devices",
        "tcp connect scan",
        "probe a port",
        "check whether a port is open or reachable",
        "enumerate listening services",
        "map the network",
        "take an inventory of open ports",
        "list the services running on a host",
        "what is listening on a host",
        "ping sweep a subnet",
        "find which machines are online",
        "gather open port data",
        "is a port reachable",
        "quick scan of a device",
        "who is on the network",
        "what devices are connected",
        "is a device online",
        "grab the banners of listening services",
        "rescan a device",
        "list the devices on the lan",
        "what is open on a device",
        "detect hosts on a subnet",
    )
    examples = (
        "scan 10.0.0.5 ports 22,80,443",
        "which ports are open on 127.0.0.1",
        "discover hosts on 10.1.0.0/24",
        "check whether port 22 is open on 10.0.0.7",
        "enumerate listening services on 172.16.0.10",
        "probe the router at 192.168.1.254 for open services",
        "discover what is running on 10.9.9.9",
        "look for open database ports on 172.16.5.5",
        "port scan 172.16.9.9 ports 1-1024",
        "list the services running on 10.0.0.14",
        "what is listening on 192.168.3.3",
        "which machines are online in 10.8.0.0/24",
        "is port 443 reachable on 10.6.6.6",
        "get the open ports of the printer at 192.168.1.40",
        "find every web server on 10.0.3.0/24",
        "quick scan of the NAS at 192.168.1.20",
        "sweep 10.0.8.0/24 for ssh",
        "show me the open ports of my router 192.168.0.1",
        "ping sweep 10.2.0.0/24",
        "rescan 10.0.0.33",
        "see if port 25 answers on 10.0.0.19",
        "list live devices on 192.168.50.0/24",
        "list the open tcp ports of 10.4.4.4",
        "sweep 192.168.7.0/24 for live hosts",
        "find every machine that answers on 10.10.0.0/24",
        "is anything listening on 127.0.0.1 port 5000",
        "gather open port data for 172.16.9.9",
        "collect the listening services of the nas at 192.168.1.50",
        "port scan 10.0.0.99",
        "what services does 10.2.3.4 expose",
        "map the hosts on my network",
        "probe ports 1 to 1024 on 127.0.0.1",
        "see which ports answer on the printer 192.168.1.40",
        "find hosts with port 22 open in 10.0.5.0/24",
        "scan the camera at 192.168.1.77",
        "run a quick scan of localhost",
        "check which of 10.0.0.1-10.0.0.10 are online",
        "find open ports on localhost",
        "which hosts are up on the 192.168.0.0/24 subnet",
        "run a tcp connect scan against 127.0.0.1",
        "check if anything is listening on port 3306 at 10.0.0.12",
        "scan ports 80 and 443 on the web server 10.0.0.80",
        "scan the host 127.0.0.1 again",
        "test if port 3389 is open on 10.1.1.1",
        "enumerate hosts in my subnet",
        "discover devices on the local network",
        "take an inventory of open ports on 127.0.0.1",
        "probe host 192.168.56.101 for listening ports",
        "check the reachability of port 445 on 10.0.0.30",
        "scan my laptop 127.0.0.1",
        "scan the printer",
        "scan the nas for open ports",
        "what ports has the thermostat got open",
        "which ports are listening on the synology",
        "check what the xbox has open",
        "find out what's running on the raspberry pi",
        "list every service on the mac mini",
        "which devices are connected to the network",
        "show me all the hosts on my lan",
        "what's on my network",
        "any new devices on the network?",
        "who is connected to my wifi",
        "how many machines are up on 10.0.0.0/24",
        "is anything answering on 10.0.0.77",
        "is port 80 open on the hue bridge",
        "does the nvr have ssh open",
        "can you reach port 443 on the access point",
        "is rdp enabled on my pc",
        "check if the fridge has any open ports",
        "probe the baby monitor",
        "sweep the lan",
        "do a port scan on the kids tablet",
        "scan ports 1-65535 on 127.0.0.1",
        "full port scan of 10.0.0.12",
        "scan all tcp ports of the alarm panel",
        "what services does the smart speaker run",
        "enumerate services on the switch",
        "what does the server in the garage expose",
        "look for web servers on 192.168.0.0/24",
        "search the subnet for ftp servers",
        "hunt for open telnet ports on 10.4.0.0/24",
        "find devices with port 554 open",
        "find anything listening on 3389 in the office range",
        "list hosts that answer ping on 10.7.0.0/24",
        "identify live hosts in 172.16.10.0/24",
        "ping every address in 192.168.5.0/24",
        "find all printers on the network",
        "locate the cameras on my network",
        "discover what's plugged into the network",
        "pls scan 10.0.0.3",
        "scna the nas",
        "sacn 192.168.1.1",
        "prot scan the router",
        "chek open ports on localhost",
        "whats open on 127.0.0.1",
        "wat ports r open on the printer",
        "scan it again",
        "rescan the switch",
        "run another scan of 10.0.0.45",
        "repeat the port scan of the nvr",
        "scan 10.0.0.8 once more",
        "check port 22 on the pi",
        "is ssh up on 10.0.0.31",
        "is the database port open on 172.16.5.9",
        "does 10.0.0.2 accept connections on 23",
        "test connectivity to port 8443 on 127.0.0.1",
        "can I connect to 10.0.0.9 on 5432",
        "tell me which ports the nas answers on",
        "report the open ports on 10.0.0.14",
        "give me a list of open ports for the thermostat",
        "what ports are exposed on my router",
        "show the listening services of 192.168.1.10",
        "get me the services on 10.1.1.20",
        "collect service banners from 10.0.0.60",
        "grab the banners on the printer",
        "gather info about the hosts on 10.2.0.0/24",
        "take stock of what's running on the network",
        "build an inventory of the devices on my lan",
        "make a list of every gadget in the house that's online",
        "inventory the open ports on the office subnet",
        "map out 172.16.0.0/24",
        "network discovery on 192.168.1.0/24",
        "host discovery on 10.5.0.0/24",
        "port sweep for 445 on 10.0.0.0/24",
        "look for anything with vnc open",
        "find machines running ssh",
        "find hosts exposing databases",
        "I want to see the open ports on my laptop",
        "I'd like a scan of the home server please",
        "could you scan the printer for me",
        "would you mind scanning 10.0.0.200",
        "can you check which ports are open on the xbox",
        "please probe the smart tv for services",
        "quickly scan the thermostat",
        "just a quick port check on 127.0.0.1",
        "scan localhost",
        "scan 127.0.0.1 port 8080",
        "scan 10.0.0.5:22",
        "scan ports 21 22 23 on 10.0.0.40",
        "check ports 80,443,8080 on the web box",
        "which of ports 22, 80 and 443 are open on 127.0.0.1",
        "what's listening on the pi",
        "list the tcp ports the synology listens on",
        "which services are up on the mail server",
        "is the web server 10.0.0.80 up",
        "are the hosts 10.0.0.1 to 10.0.0.5 online",
        "is the nas online",
        "which hosts are alive",
        "count the hosts on 192.168.3.0/24",
        "find new hosts on the network",
        "scan the whole subnet for open ports",
        "scan everything on 10.9.0.0/24",
        "portscan 172.16.0.0/28",
        "nmap the router",
        "run nmap against 10.0.0.50",
        "do a tcp sweep of the dmz",
        "enumerate the network",
        "what can you see on the network",
        "show me what devices are on the guest wifi",
        "look at the network and list the devices",
        "check the network for connected devices",
        "which ip addresses are in use on my lan",
        "find the ip of the printer",
        "what is running on port 8000 of the nas",
        "what is 10.0.0.33 listening on",
        "what's exposed to the network on my desktop",
        "find the services the alarm panel offers",
        "probe 10.10.10.10",
        "probe the doorbell for open ports",
        "run a scan on the garage server",
        "scan the fridge",
        "is telnet open on the old router",
        "does the synology answer on port 5000",
        "is there a web server on the pi",
        "check whether the nvr listens on 554",
        "what's running on the garage server",
        "whats up on 10.0.0.0/24",
        "any hosts answering in 192.168.2.0/24",
        "find out which ports the kids tablet has open",
        "list open ports",
        "scan pls",
        "port check on the mac mini",
        "check for open ports on every device",
        "which of my devices have ssh open",
        "are any devices exposing telnet",
        "show what services are up on the nas right now",
        "do you see the printer on the network",
        "is the camera reachable",
        "look for devices listening on 8080",
        "run a fresh scan of the router",
        "scan the lan again",
        "gather the open ports of all hosts in 10.3.0.0/24",
        "discover the machines in the office",
        "get me a device list",
        "what's listening on the baby monitor",
        "check which ports the fridge has open",
        "hey is the ring doorbell answering on any ports",
        "open ports on 10.21.0.3?",
        "tcp scan 172.25.3.0/28",
        "which machines in 10.33.0.0/24 are powered on right now",
        "list everything connected to the guest wifi",
        "find all devices in 192.168.66.0/24",
        "is the cash register online",
        "do a ping sweep over 10.0.9.0/24",
        "probe port 25 on the mail box 10.3.3.25",
        "get banners off 127.0.0.1 ports 21 and 22",
        "show services on the nvr please",
        "can you see if the smart speaker is on the network",
        "ports for the tv",
        "enumerate everything on the pi",
        "inventory the lan",
        "scan it",
        "discovery run on 172.17.0.0/24",
        "find hosts with 3306 open in 10.4.4.0/24",
        "look for open telnet ports anywhere on 192.168.2.0/24",
        "is anybody listening on 5900 at 10.0.0.77",
        "what does my mum's ipad have open",
        "scann the fridge",
        "discovr hosts 10.0.1.0/24",
        "wat ports r open on my ps5",
        "please check whether the label printer in the warehouse is reachable",
        "I'd appreciate it if you could list the machines on our network",
        "tell me what the robot vacuum exposes on the network",
        "quick portscan of the game server",
        "check port 443 on the doorbell",
        "how many hosts are alive on 172.24.0.0/24",
        "which devices are on the network at the moment",
        "fetch the ssh banner of 10.1.2.3",
        "look up which services the voip phones expose",
        "ping 10.0.0.254",
        "is 192.168.1.20 up",
        "find the printers on the network",
        "scan 10.15.0.0/24 for ssh",
        "scan ports 1 to 65535 on 127.0.0.2",
        "top 100 ports on 10.6.6.6",
        "what's running on the box under the stairs",
        "could u scan my brother's gaming pc",
        "scan the lights hub",
        "what servers are up in the rack",
        "enumerate the hosts on vlan 20",
        "which of the office pcs are switched on",
        "get me the open ports of every camera",
        "check the webcam's ports",
        "has the smart plug got anything open",
        "list listening tcp services on 172.16.200.10",
        "rescan the baby monitor",
        "re-run the port scan on the nas",
        "discover devices on the wifi, nothing else",
        "just scan 10.0.0.5, no analysis needed",
        "scan only, 192.168.3.3",
        "sweep the warehouse network for devices",
        "which ips answer in 10.16.0.0/25",
        "see if the heat pump is connected",
        "find my lost raspberry pi on the lan",
        "is port 8123 open on home assistant",
        "check if ssh is reachable on the nas",
        "test whether 10.0.2.2 accepts connections on 80",
        "port check 127.0.0.1 3000",
        "is the plex server's port open",
        "what services does the receptionist's computer run",
        "gather the open ports of all hosts on 10.40.0.0/24",
        "collect service banners from the switches",
        "what is 10.0.0.31 listening on",
        "I need a list of open ports on 192.168.10.5, please",
        "would you be able to tell me which gadgets are connected, dear",
        "find every web server in 172.21.0.0/24",
        "are there any rdp hosts on the lan",
        "detect new devices on the network",
        "scan the nas again, the old result is stale",
        "give me the service list for the alarm system",
        "map 10.8.0.0/24",
        "what's connected to the router right now",
        "which ports does the smartwatch charger dock expose",
        "scan the kids' tablet",
        "Scan 192.168.88.1.",
        "PORTSCAN 10.0.0.2",
        "is there a device at 10.0.0.99",
        "hosts up in 127.0.0.0/29?",
        "could you please check what is running on my husband's computer",
        "search for open databases on the lan",
        "run discovery on the iot vlan",
        "scan grandpa's desktop",
        "is the thermostat up",
        "scnan 10.0.0.8",
        "is the pi-hole's web admin port open",
        "is the doorbell still on the network",
        "sacn the router",
        "is anything listening on 3389 on the reception pc",
        "scan 127.0.0.1 ports 1-1000",
        "which devices are connected to the mesh wifi",
        "find every host with smb open on 10.9.9.0/24",
        "check whether the nas answers on 445",
        "what's on 192.0.2.0/24",
        "scan the thermostat",
        "list open ports on the security camera",
        "quick scan of the xbox please",
        "is the garage camera reachable",
        "nmap the raspberry pi",
        "fetch the banners of everything on 127.0.0.1",
        "discover what's on the iot network, nothing more",
        "show me the live hosts on 10.1.1.0/24",
        "can u check if my phone is on the wifi",
        "what services does the doorbell expose",
        "tell me what's open on the tv, just the facts",
        "is there anything on port 8443 at 198.51.100.7",
        "scan 203.0.113.22 for web ports",
        "portscan 10.3.2.1 80,443,8080",
        "who is connected to the network right now",
        "inventory the open ports on the warehouse scanners",
        "what's listening on the alarm panel",
        "do a port scan of the new nas",
        "check if grandpa's computer is switched on",
        "find all the printers on the network",
        "which of the tills is online",
        "sweep 192.0.2.0/25 for hosts",
        "please scan the game console for open ports, thank you very much",
        "is the smart fridge connected",
        "list the services on 127.0.0.3",
        "ping 10.0.0.1",
        "are the cameras online",
        "scan my mum's tablet",
        "what does the laptop in the kitchen have open",
        "check 203.0.113.9 port 22",
        "see what the heat pump has open",
        "look for ssh servers on 10.10.10.0/24",
        "what ip addresses are in use on the lan",
        "scan teh nas for open ports",
        "chek the printer ports",
        "wat ports r open on my pc",
        "port scan 127.0.0.1 quick",
        "is the vpn gateway answering on 1194",
        "scan the office router's ports please",
        "discover every device on 172.16.20.0/24 and list them",
        "find live hosts",
        "list hosts",
        "open ports?",
        "which boxes on 198.51.100.0/24 have port 80 open",
        "I would be grateful if you could find out what devices are on my home network",
        "what's running on the box in the cupboard",
        "check the ports on the home assistant server",
        "scan the kids' tablets",
        "enumerate hosts on the guest vlan",
        "banner grab the ftp server at 192.0.2.21",
        "tell me which devices answered a ping on 10.2.0.0/24",
        "which ports are open on the accounting server",
        "do a tcp scan of 198.51.100.30",
        "check the fitness tracker hub for open ports",
        "are there any web servers on the lab network",
        "check port 53 on 192.0.2.53",
        "find the hosts on the cctv vlan",
        "list the open ports of the dishwasher",
        "scan the smart lock",
        "what is exposed on 203.0.113.40",
        "give me the open ports on every machine in 127.0.0.0/30",
        "quickly see which ports the laser printer in accounts answers on",
        "is the backup server reachable on ssh",
        "look up which devices are online in the shop",
        "run a portscan on the conference room display",
        "scan 10.20.30.40 ports 20-25",
        "detect any hosts on 10.99.0.0/28",
        "yo scan my pc",
        "Good afternoon, might you find out which services the file server offers?",
        "collect the open ports of the voip phones",
        "see whats up on 192.0.2.0/27",
        "rescan the hallway speaker",
        "scan the new smart doorbell for ports",
    )
    State = NoState
    eager = False  # opens a TaskGroup at once; I/O-bound, so a Task per scan costs nothing
    handler_timeout_s = 1800.0
    # An instance scans one target, or one slice of a large one, at a time: the pool is the
    # parallelism. A large scan keeps pool_max slices in flight, each of scan_concurrency
    # probes, and the supervisor grows the pool while its instances stay busy.
    concurrency = 1
    pool_max = 4

    def __init__(self, scope: Scope, settings: Settings) -> None:
        self._scope = scope
        self._timeout = settings.probe_timeout_s
        self._concurrency = settings.scan_concurrency
        self._ports = list(settings.ports)

    @classmethod
    def start_for(cls, command: str) -> ScanRequested:
        """A routed command ("scan 127.0.0.1 ports 22,80") as the scan it asks for."""
        return parse_scan(command)

    @classmethod
    def start_for_step(
        cls, step_text: str, params: StepParams, inputs: Sequence[StepInput]
    ) -> ScanRequested:
        """A plan's scan step: the one target it names (a plan gives each target its own
        step), or the one host the steps before it found ("then scan it")."""
        targets = params.targets or [hp.host for hp in merged_facts(inputs).open]
        if len(targets) != 1:
            raise BadCommand(
                f"a scan step takes one target; {step_text!r} has "
                f"{', '.join(targets) if targets else 'none'}. {SCAN_USAGE}"
            )
        parse_network(targets[0])
        return ScanRequested(target=targets[0], ports=params.ports)

    async def on_scan(self, event: ScanRequested, ctx: Context[NoState]) -> ScanReport:
        hosts = list(hosts_of(self._scope.check(event.target)))
        ports = event.ports or self._ports  # none named: the configured default ports

        def progress(probed: int, total: int, open_ports: int = 0) -> None:
            ctx.publish_nowait(
                PROGRESS,
                ScanProgressed(target=event.target, probed=probed, total=total, open=open_ports),
            )

        chunks: list[ChunkScanned] = []
        if len(hosts) > CHUNK_HOSTS:
            chunks = await self._scan_in_chunks(hosts, ports, ctx, progress)
            found = {hp.host: hp.open_ports for c in chunks for hp in c.open}
        else:
            found = await scan(
                hosts,
                ports,
                concurrency=probe_window(self._concurrency, self.pool_max),
                timeout=self._timeout,
                progress=progress,
            )
        for host, ports in found.items():
            ctx.knowledge.update(
                f"hosts/{host}",
                _replace_with({"open_ports": ports}),
                type=dict[str, list[int]],
                default={},
            )
        outcomes = await ctx.fan_out(
            "analyzer",
            [
                (
                    f"{host}: open {', '.join(map(str, ports))}",
                    AnalysisRequested(host=host, open_ports=ports),
                )
                for host, ports in found.items()
            ],
        )
        analyses = [o.result_as(AnalysisReport) for o in outcomes if o.ok]
        findings = [f for a in analyses for f in a.findings]
        inventory.record_scan(
            ctx.knowledge,
            job_id=ctx.job.job_id,
            at=ctx.clock.now(),
            probed=set(hosts),
            found=found,
            findings=findings,
        )
        return ScanReport(
            target=event.target,
            hosts_probed=len(hosts),
            open=[HostPorts(host=h, open_ports=p) for h, p in found.items()],
            findings=findings,
            failed_analyses=sum(1 for o in outcomes if not o.ok),
            chunks=chunks,
        )

    async def _scan_in_chunks(
        self,
        hosts: Sequence[str],
        ports: list[int],
        ctx: Context[NoState],
        progress: Callable[[int, int, int], None],
    ) -> list[ChunkScanned]:
        """The hosts in slices, each sent to the least busy instance of this type's pool;
        pool_max slices in flight, the next sent as one comes back, so an instance the
        supervisor adds takes the next slice. A slice that fails fails the scan."""
        slices = iter([hosts[i : i + CHUNK_HOSTS] for i in range(0, len(hosts), CHUNK_HOSTS)])
        done: list[ChunkScanned] = []
        total = len(hosts) * len(ports)

        async def feed() -> None:
            for piece in slices:
                reply = await ctx.request(
                    TypeRef(self.name),
                    ChunkScanRequested(hosts=list(piece), ports=ports),
                    timeout=self.handler_timeout_s,
                )
                done.append(reply)
                progress(
                    sum(c.hosts_probed for c in done) * len(ports),
                    total,
                    sum(len(hp.open_ports) for c in done for hp in c.open),
                )

        async with asyncio.TaskGroup() as tg:
            for _ in range(self.pool_max):
                tg.create_task(feed())
        return done

    async def on_chunk(self, event: ChunkScanRequested, ctx: Context[NoState]) -> ChunkScanned:
        """One slice of a large scan, as a pool instance: every host checked against the
        scope again, whoever sent it."""
        if not 0 < len(event.hosts) <= CHUNK_HOSTS:
            raise BadCommand(f"a slice of a scan takes 1 to {CHUNK_HOSTS} hosts")
        for host in event.hosts:
            self._scope.check(host)
        started = ctx.clock.monotonic()
        found = await scan(
            event.hosts,
            event.ports,
            concurrency=probe_window(self._concurrency, self.pool_max),
            timeout=self._timeout,
        )
        return ChunkScanned(
            first=event.hosts[0],
            last=event.hosts[-1],
            hosts_probed=len(event.hosts),
            open=[HostPorts(host=h, open_ports=p) for h, p in found.items()],
            worker=ctx.task_id,
            seconds=round(ctx.clock.monotonic() - started, 3),
        )


def _replace_with(value: HostRecord) -> Callable[[HostRecord], HostRecord]:
    """A knowledge update that replaces the old value: the latest scan is the truth."""
    return lambda _old: value
