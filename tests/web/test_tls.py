from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.web.tls import ensure_certificate, needs_tls

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("listen", "tls"),
    [
        (["127.0.0.1:8080"], False),
        (["[::1]:8080", "localhost:80"], False),
        (["0.0.0.0:443"], True),
        (["127.0.0.1:8080", "192.168.1.5:443"], True),
    ],
)
def test_tls_whenever_the_panel_listens_beyond_loopback(listen: list[str], tls: bool) -> None:
    assert needs_tls(listen) is tls


def test_a_device_makes_its_own_certificate_once_and_keeps_the_key_private(
    tmp_path: Path,
) -> None:
    cert, key = ensure_certificate(tmp_path, ["192.168.1.5", "0.0.0.0"])
    assert (cert.stat().st_mode & 0o777, key.stat().st_mode & 0o777) == (0o600, 0o600)
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("192.168.1.5") in names.get_values_for_type(x509.IPAddress)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)  # a usable pair
    assert ensure_certificate(tmp_path, []) == (cert, key)
    assert cert.read_bytes() == loaded.public_bytes(Encoding.PEM)  # not made again
