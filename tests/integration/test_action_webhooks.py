"""Notices and tickets to the admin's webhooks: JSON over HTTPS to a receiver on loopback
that this test starts with a certificate of its own making (trusted through webhook_ca_file);
the ticket template filled without changing its shape; a receiver that refuses, or one the
appliance must not trust, fails the action, recorded with why."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.actions.model import Notify, Ticket
from appliance.actions.service import Actions
from appliance.actions.webhook import Webhook
from appliance.errors import ActionFailed
from appliance.events import ActionDecided
from appliance.runtime import FakeClock, Store
from appliance.scope import Scope

pytestmark = pytest.mark.integration

ASKED = {"job_id": "job-1", "task_id": "t-1"}


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "receiver.pem", folder / "receiver.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[str, Any]] = []
        self.status = 200


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[Receiver, str, Path]]:
    cert, key = _certificate(tmp_path)
    state = Receiver()

    async def hook(request: web.Request) -> web.Response:
        state.got.append((request.path, await request.json()))
        return web.Response(status=state.status)

    app = web.Application()
    app.router.add_post("/{name}", hook)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state, f"https://127.0.0.1:{port}", cert
    finally:
        await runner.cleanup()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "qey.db")
    yield s
    s.close()


def _actions(store: Store, base: str, ca: Path | None, template: str | None = None) -> Actions:
    recorded: list[ActionDecided] = []
    extra = {"ticket_template": template} if template else {}
    return Actions(
        store,
        FakeClock(),
        Scope(["127.0.0.0/24"]),
        record=recorded.append,
        load_firewall=lambda entries: None,
        webhook=Webhook(f"{base}/notices", ca),
        tickets=Webhook(f"{base}/tickets", ca),
        **extra,  # type: ignore[arg-type]
    )


async def test_a_notice_and_a_ticket_reach_the_receivers(
    receiver: tuple[Receiver, str, Path], store: Store
) -> None:
    state, base, ca = receiver
    template = '{"fields": {"summary": "[qey] {title}", "labels": ["qey", "{host}"]}}'
    actions = _actions(store, base, ca, template)
    note = await asyncio.to_thread(actions.request, Notify(message="telnet open"), **ASKED)
    title = 'telnet "open" on 127.0.0.3\n'  # quotes and a newline cannot break the JSON
    ticket = await asyncio.to_thread(
        actions.request, Ticket(title=title, body="b", about="127.0.0.3"), **ASKED
    )
    assert (note.state, ticket.state) == ("applied", "applied")
    assert state.got == [
        ("/notices", {"notice": "telnet open", "reason": ""}),
        ("/tickets", {"fields": {"summary": f"[qey] {title}", "labels": ["qey", "127.0.0.3"]}}),
    ]


async def test_a_receiver_that_refuses_fails_the_action_saying_so(
    receiver: tuple[Receiver, str, Path], store: Store
) -> None:
    state, base, ca = receiver
    state.status = 503
    actions = _actions(store, base, ca)
    with pytest.raises(ActionFailed, match="HTTP 503"):
        await asyncio.to_thread(actions.request, Ticket(title="t"), **ASKED)
    (failed,) = actions.records()
    assert failed.state == "failed" and "503" in failed.detail


async def test_a_receiver_the_appliance_does_not_trust_gets_nothing(
    receiver: tuple[Receiver, str, Path], store: Store
) -> None:
    state, base, _ = receiver
    actions = _actions(store, base, None)  # the system's CAs: the self-made certificate fails
    with pytest.raises(ActionFailed, match="could not be reached"):
        await asyncio.to_thread(actions.request, Notify(message="m"), **ASKED)
    assert state.got == []


def test_a_webhook_must_be_https(tmp_path: Path) -> None:
    from appliance.settings import Settings

    (tmp_path / "config.toml").write_text('webhook_url = "http://127.0.0.1:9/x"\n')
    with pytest.raises(ValueError, match=r"webhook_url.*not an https:// URL"):
        Settings.load({"QEY_DATA_DIR": str(tmp_path)})
    (tmp_path / "config.toml").write_text("ticket_template = '{\"a\": '\n")
    with pytest.raises(ValueError, match="ticket_template is not JSON"):
        Settings.load({"QEY_DATA_DIR": str(tmp_path)})
