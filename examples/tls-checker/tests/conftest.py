"""Loopback TLS servers with certificates made here, and the example package on the path
(the unit tests import it from the source tree; the end-to-end test installs its wheel)."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificate(tmp: Path, *, days: int, issuer_name: str | None = None) -> tuple[Path, Path]:
    """A leaf for 127.0.0.1 valid ``days`` from now: self-signed, or signed by a CA made
    here when ``issuer_name`` is given. Returns (cert chain PEM, key PEM)."""
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    signer, issuer = key, _name("loopback test")
    if issuer_name is not None:
        signer, issuer = ec.generate_private_key(ec.SECP256R1()), _name(issuer_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("loopback test"))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=max(1, 1 - days)))
        .not_valid_after(now + timedelta(days=days, hours=1))
        .sign(signer, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"cert-{days}-{issuer_name}.pem", tmp / f"key-{days}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsServer:
    """A loopback TLS server; ``accepted`` counts the connections it took."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.accepted = host, port, 0


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """``await tls_server(days=30, issuer_name=None, host="127.0.0.1")``."""
    servers: list[asyncio.Server] = []

    async def start(
        *, days: int = 30, issuer_name: str | None = None, host: str = "127.0.0.1"
    ) -> TlsServer:
        cert, key = make_certificate(tmp_path, days=days, issuer_name=issuer_name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        record = TlsServer(host, 0)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            record.accepted += 1
            await reader.read()
            writer.close()

        server = await asyncio.start_server(serve, host, 0, ssl=context)
        servers.append(server)
        record.port = server.sockets[0].getsockname()[1]
        return record

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
