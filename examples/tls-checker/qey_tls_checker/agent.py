"""The ``tls_checker`` agent type: one TLS server's certificate, inside the scope only."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from appliance.errors import BadCommand
from appliance.events import Event
from appliance.runtime import Agent, Context, NoState, StepInput, StepParams
from appliance.scope import Scope
from appliance.settings import Settings
from qey_tls_checker.certificate import CertificateReport, fetch_certificate, read_certificate

USAGE = "say: check the certificate of <address>[:port] (port 443 unless named)"

# "127.0.0.1:8443", "127.0.0.1 port 8443", or an address alone (443)
_HOST_PORT = re.compile(
    r"(?<![\w.])(?P<host>\d{1,3}(?:\.\d{1,3}){3})(?::(?P<port>\d{1,5}))?(?![\w.])"
)
_PORT = re.compile(r"\bport\s+(?P<port>\d{1,5})\b", re.IGNORECASE)


class CertificateCheckRequested(Event, tag="tls.certificate_check_requested"):
    """Check the certificate the TLS server at ``host``:``port`` presents."""

    host: str
    port: int = 443


def parse_target(command: str) -> CertificateCheckRequested:
    """The one address (and port) a command names; BadCommand says what is missing."""
    hosts = list(_HOST_PORT.finditer(command))
    if len(hosts) != 1:
        raise BadCommand(f"{command!r} names {len(hosts)} addresses, not one; {USAGE}")
    found = hosts[0]
    named = _PORT.search(command)
    port = int(found["port"] or (named["port"] if named else 443))
    if not 0 < port < 65536:
        raise BadCommand(f"port {port} is not a TCP port; {USAGE}")
    return CertificateCheckRequested(host=found["host"], port=port)


class TlsChecker(Agent):
    name = "tls_checker"
    description = (
        "Checks the TLS certificate a server presents: when it expires and how many days are "
        "left, whether it is self-signed, and its subject and issuer."
    )
    capabilities = (
        "check a tls certificate",
        "when does the certificate expire",
        "certificate expiry date",
        "days left before the certificate expires",
        "is the certificate self-signed",
        "who issued the certificate",
        "show the subject and issuer of the https certificate",
        "check the ssl certificate of a server",
    )
    examples = (
        "when does the certificate of 10.0.0.5:443 expire",
        "check the tls certificate on 192.168.1.10",
        "is the certificate of 10.0.0.7:8443 self-signed",
        "how many days until the ssl cert of 172.16.0.4 expires",
        "who issued the https certificate of the nas at 192.168.1.20",
        "check the certificate expiry date on 127.0.0.1:8443",
        "when does the tls cert on the router run out",
        "check the expiry of the nas https certificate",
        "is the web server's certificate still valid",
        "show the subject and issuer of the certificate on 10.1.1.1 port 4443",
    )
    State = NoState
    eager = False  # opens a connection at once: a Task per check costs nothing here
    handler_timeout_s = 30.0

    def __init__(self, scope: Scope, settings: Settings) -> None:
        # the appliance passes these by name: the same scope the built-in collectors obey
        self._scope = scope
        self._timeout_s = max(settings.probe_timeout_s, 3.0)  # a handshake is more than a SYN

    @classmethod
    def start_for(cls, command: str) -> Event | None:
        return parse_target(command)

    @classmethod
    def start_for_step(
        cls, step_text: str, params: StepParams, inputs: Sequence[StepInput]
    ) -> Event | None:
        return parse_target(step_text)

    async def on_check(
        self, event: CertificateCheckRequested, ctx: Context[NoState]
    ) -> CertificateReport:
        self._scope.check(event.host)  # OutOfScope: refused before anything is sent
        der = await fetch_certificate(event.host, event.port, self._timeout_s)
        return read_certificate(der, event.host, event.port, datetime.now(UTC))
