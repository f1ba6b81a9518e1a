"""Fetching a TLS server's certificate and reading the facts an admin asks about.

The certificate is fetched without verifying it (a self-signed or expired one is exactly
what we want to see) and parsed with ``cryptography``, which the appliance already ships.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature


class CertificateReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the checker found: the job's result, as the panel and ``qey submit`` show it."""

    host: str
    port: int
    subject: str
    issuer: str
    not_after: str  # ISO 8601, UTC
    days_left: int  # negative once expired
    expired: bool
    self_signed: bool


async def fetch_certificate(host: str, port: int, timeout_s: float) -> bytes:
    """The server's leaf certificate (DER). Every step is under ``timeout_s``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we report on the certificate, we do not trust it
    async with asyncio.timeout(timeout_s):
        _, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
    finally:
        writer.close()
        try:
            async with asyncio.timeout(timeout_s):
                await writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass  # the certificate is what we came for
    if not der:
        raise ConnectionError(f"{host}:{port} sent no certificate")
    return bytes(der)


def read_certificate(der: bytes, host: str, port: int, now: datetime) -> CertificateReport:
    """The facts of one certificate as of ``now`` (timezone-aware)."""
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    return CertificateReport(
        host=host,
        port=port,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=not_after.isoformat(),
        days_left=(not_after - now.astimezone(UTC)).days,
        expired=not_after <= now,
        self_signed=is_self_signed(cert),
    )


def is_self_signed(cert: x509.Certificate) -> bool:
    """Issued by itself: its issuer is its subject and its own key verifies its signature."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
