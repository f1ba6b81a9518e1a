"""The tls_checker type against loopback TLS servers whose certificates the tests make."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from qey_tls_checker.agent import CertificateCheckRequested, TlsChecker, parse_target
from qey_tls_checker.certificate import CertificateReport

from appliance.errors import BadCommand, OutOfScope
from appliance.runtime import Runtime, Store, TaskOutcome, running
from appliance.scope import Scope
from appliance.settings import Settings

pytestmark = pytest.mark.integration


def checker(scope: str = "127.0.0.1/32") -> TlsChecker:
    return TlsChecker(Scope([scope]), Settings.load({"QEY_DATA_DIR": "/nonexistent"}))


async def check(agent: TlsChecker, host: str, port: int) -> CertificateReport:
    return await agent.on_check(CertificateCheckRequested(host=host, port=port), None)  # type: ignore[arg-type]


async def test_days_left_come_from_the_certificates_expiry(tls_server: Callable[..., Any]) -> None:
    server = await tls_server(days=30)
    report = await check(checker(), server.host, server.port)
    assert report.days_left == 30
    assert not report.expired
    expiry = datetime.fromisoformat(report.not_after)
    assert 29 * 86400 < (expiry - datetime.now(UTC)).total_seconds() < 31 * 86400
    assert report.subject == "CN=loopback test"


async def test_an_expired_certificate_is_said_expired(tls_server: Callable[..., Any]) -> None:
    server = await tls_server(days=-3)
    report = await check(checker(), server.host, server.port)
    assert report.expired
    assert report.days_left < 0


async def test_a_self_signed_certificate_is_flagged(tls_server: Callable[..., Any]) -> None:
    server = await tls_server(days=10)
    report = await check(checker(), server.host, server.port)
    assert report.self_signed
    assert report.issuer == report.subject


async def test_a_ca_signed_certificate_is_not_flagged(tls_server: Callable[..., Any]) -> None:
    server = await tls_server(days=10, issuer_name="Loopback Test CA")
    report = await check(checker(), server.host, server.port)
    assert not report.self_signed
    assert report.issuer == "CN=Loopback Test CA"


async def test_a_target_outside_the_scope_is_refused_before_any_connection(
    tls_server: Callable[..., Any],
) -> None:
    server = await tls_server(days=10, host="127.0.0.2")
    with pytest.raises(OutOfScope, match=r"127\.0\.0\.2"):
        await check(checker("127.0.0.1/32"), server.host, server.port)
    assert server.accepted == 0


def test_commands_name_the_address_and_port() -> None:
    assert parse_target("when does the certificate of 127.0.0.1:8443 expire") == (
        CertificateCheckRequested(host="127.0.0.1", port=8443)
    )
    assert parse_target("check the cert on 127.0.0.1 port 4443").port == 4443
    assert parse_target("check the cert on 127.0.0.1").port == 443
    with pytest.raises(BadCommand, match="names 0 addresses"):
        parse_target("check the certificate of the nas")


async def run_job(tmp_path: Path, command: str) -> TaskOutcome:
    """``command`` as a tls_checker job on a runtime whose scope is 127.0.0.1 alone."""
    runtime = Runtime(Store(tmp_path / "qey.db"))
    settings = Settings.load({"QEY_DATA_DIR": str(tmp_path)})
    runtime.register(TlsChecker, lambda: TlsChecker(Scope(["127.0.0.1/32"]), settings))
    async with running(runtime):
        _, root = runtime.submit(command, "tls_checker")
        async with asyncio.timeout(15):
            return await runtime.wait_task(root)


async def test_a_job_through_the_runtime_returns_the_report(
    tls_server: Callable[..., Any], tmp_path: Path
) -> None:
    server = await tls_server(days=45)
    command = f"when does the certificate of 127.0.0.1:{server.port} expire"
    outcome = await run_job(tmp_path, command)
    assert outcome.status == "done", outcome.detail
    report = outcome.result_as(CertificateReport)
    assert (report.port, report.days_left, report.self_signed) == (server.port, 45, True)


async def test_a_job_for_a_target_outside_the_scope_fails_untouched(
    tls_server: Callable[..., Any], tmp_path: Path
) -> None:
    server = await tls_server(days=45, host="127.0.0.2")
    outcome = await run_job(tmp_path, f"check the certificate of 127.0.0.2:{server.port}")
    assert outcome.status != "done"
    assert "outside the configured scope" in outcome.detail
    assert server.accepted == 0
