"""The panel's TLS certificate: made on the device, for the device, on first start.

A panel that listens beyond loopback must not send a password in clear text, and a device
cannot get a certificate from a public CA for a LAN address. So each device makes its own
key (never leaves the data directory) and a self-signed certificate naming it; the browser
asks its user to trust it once, and then notices if it ever changes. An operator may put a
CA-issued pair in the same files instead; it is then used as it is.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from pathlib import Path

from appliance.durable import write_atomic

CERT_NAME = "web-tls.crt"
KEY_NAME = "web-tls.key"
VALID_DAYS = 3650


def ensure_certificate(data_dir: Path, addresses: list[str]) -> tuple[Path, Path]:
    """The certificate and key files, made now if there are none yet."""
    cert, key = data_dir / CERT_NAME, data_dir / KEY_NAME
    if cert.exists() and key.exists():
        return cert, key
    # Imported here, not at the top: the certificate is made once per device, and importing
    # cryptography costs every start of the appliance about 1.5 s under QEMU's TCG.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    hostname = socket.gethostname() or "qey"
    names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName(f"{hostname}.local")]
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if not ip.is_unspecified:
            names.append(x509.IPAddress(ip))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"qEY-0 {hostname}")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    write_atomic(
        key,
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    write_atomic(cert, certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


def needs_tls(listen: list[str]) -> bool:
    """Anything but loopback is a network a password could be read on."""
    for address in listen:
        host = address.rsplit(":", 1)[0].strip("[]")
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return True
        except ValueError:
            if host != "localhost":
                return True
    return False
