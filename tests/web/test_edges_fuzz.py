"""The panel's decoding edges under generated input, the way test_schemathesis fuzzes the API
bodies: cookies of any bytes, multipart forms broken anywhere, bodies in any charset (real,
unknown or absurd), JSON nested to any depth. Whoever sends them, signed in or not, gets an
answer below 500 and the log gets no ERROR (no traceback): bad input is the client's, and
the server says so.

Requests go over a real loopback socket with http.client, so a header can carry bytes that
no well-behaved client library would send.
"""

from __future__ import annotations

import http.client
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.web.sessions import CSRF_HEADER, FORM_COOKIE, SESSION_COOKIE
from tests.web.live_panel import LivePanel, live_panel

pytestmark = pytest.mark.property

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# what http.client refuses to put in a header (it would end the header early)
_HEADER_BREAK = re.compile(rb"\n(?![ \t])|\r(?![ \t\n])")


class _Errors(logging.Handler):
    """Every ERROR record, from any thread (the panel serves from its own)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Edge:
    """The live panel, a signed-in session's cookie and CSRF token, and a form token."""

    def __init__(self, panel: LivePanel) -> None:
        url = urlsplit(panel.base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.session = panel.session.cookies[SESSION_COOKIE].encode()
        self.csrf = panel.csrf.encode()
        form = panel.session.get(f"{panel.base_url}/login", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        self.form_token = token.group(1).encode()
        self.nonce = panel.session.cookies[FORM_COOKIE].encode()
        self.errors = _Errors()

    def send(
        self, method: str, path: str, headers: list[tuple[str, bytes]], body: bytes = b""
    ) -> int:
        """The status of one raw request; no ERROR may have been logged while it ran."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)).encode())
            conn.endheaders(body)
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        logged = [f"{r.name}: {r.getMessage()}" for r in self.errors.records]
        self.errors.records.clear()
        assert logged == [], (method, path, logged)
        return response.status

    def signed_in(self, *, csrf: bool = True) -> list[tuple[str, bytes]]:
        cookie = [("Cookie", SESSION_COOKIE.encode() + b"=" + self.session)]
        return cookie + ([(CSRF_HEADER, self.csrf)] if csrf else [])


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    with live_panel(Path(tmp_path_factory.mktemp("edges"))) as panel:
        found = Edge(panel)
        root = logging.getLogger()
        root.addHandler(found.errors)
        try:
            yield found
        finally:
            root.removeHandler(found.errors)


def _header_safe(value: bytes) -> bool:
    return not _HEADER_BREAK.search(value)


header_bytes = st.binary(max_size=120).filter(_header_safe)
cookie_values = st.one_of(
    header_bytes,
    st.text(max_size=40).map(lambda t: t.encode("utf-8")).filter(_header_safe),
    st.from_regex(rb"\A[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,50}\Z"),  # shaped like ours
)


@FUZZ
@given(value=cookie_values, whole=header_bytes)
def test_any_cookie_gets_an_answer_below_500(edge: Edge, value: bytes, whole: bytes) -> None:
    # 400: aiohttp's parser refused the header itself; 401: no session; never signed in
    for cookie in (SESSION_COOKIE.encode() + b"=" + value, FORM_COOKIE.encode() + b"=" + value):
        assert edge.send("GET", "/api/v1/status", [("Cookie", cookie)]) in (400, 401)
        assert edge.send("GET", "/", [("Cookie", cookie)]) in (303, 400)
        form = b"csrf_token=" + edge.form_token + b"&password=wrong"
        status = edge.send(
            "POST",
            "/login",
            [("Cookie", cookie), ("Content-Type", b"application/x-www-form-urlencoded")],
            form,
        )
        assert status in (400, 401, 403, 429)
    assert edge.send("GET", "/api/v1/status", [("Cookie", whole)]) in (400, 401)


boundaries = st.one_of(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=70),
    st.binary(max_size=30),
).map(lambda b: b.encode("latin-1", "replace") if isinstance(b, str) else b)
part_headers = st.lists(
    st.one_of(
        st.just(b'Content-Disposition: form-data; name="csrf_token"'),
        st.just(b'Content-Disposition: form-data; name="password"; filename="x"'),
        st.just(b"Content-Type: text/plain; charset=utf-16"),
        st.just(b"Content-Transfer-Encoding: base64"),
        st.binary(max_size=60),
    ),
    max_size=4,
)


@st.composite
def multipart(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(boundary, body): well-formed parts, broken ones, or bytes."""
    boundary = draw(boundaries)
    if draw(st.booleans()):
        return boundary, draw(st.binary(max_size=400))
    body = b""
    for _ in range(draw(st.integers(0, 3))):
        head = b"\r\n".join(draw(part_headers))
        body += b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + draw(st.binary(max_size=80))
        body += draw(st.sampled_from([b"\r\n", b"", b"\n"]))
    body += draw(st.sampled_from([b"--" + boundary + b"--\r\n", b"--" + boundary, b""]))
    return boundary, body


@FUZZ
@given(form=multipart(), quoted=st.booleans())
def test_any_multipart_form_gets_an_answer_below_500(
    edge: Edge, form: tuple[bytes, bytes], quoted: bool
) -> None:
    boundary, body = form
    value = b'"' + boundary + b'"' if quoted else boundary
    content_type = b"multipart/form-data; boundary=" + value
    if not _header_safe(content_type):
        return
    anon_form = [("Cookie", FORM_COOKIE.encode() + b"=" + edge.nonce)]
    for path, headers in (
        ("/login", anon_form),
        ("/setup", anon_form),
        ("/logout", []),
        # signed in, CSRF token to be read from the form: the guard parses it
        ("/logout", edge.signed_in(csrf=False)),
    ):
        status = edge.send("POST", path, [*headers, ("Content-Type", content_type)], body)
        assert status < 500, (path, status)
    assert edge.send("GET", "/api/v1/status", edge.signed_in()) == 200  # still signed in


charsets = st.one_of(
    st.sampled_from(
        ["utf-8", "latin-1", "utf-16", "utf-32", "ascii", "idna", "rot13", "base64", "bogus", ""]
    ),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20),
)
media_types = st.sampled_from(
    ["application/x-www-form-urlencoded", "application/json", "text/plain", "multipart/form-data"]
)


@FUZZ
@given(media=media_types, charset=charsets, body=st.binary(max_size=300))
def test_a_body_in_any_encoding_gets_an_answer_below_500(
    edge: Edge, media: str, charset: str, body: bytes
) -> None:
    content_type = f"{media}; charset={charset}".encode("latin-1")
    anon_form = [("Cookie", FORM_COOKIE.encode() + b"=" + edge.nonce)]
    for path, headers in (
        ("/login", anon_form),
        ("/logout", edge.signed_in(csrf=False)),
        ("/api/v1/route", edge.signed_in()),
        ("/api/v1/jobs", edge.signed_in()),
        ("/api/v1/events", edge.signed_in()),
    ):
        status = edge.send("POST", path, [*headers, ("Content-Type", content_type)], body)
        assert status < 500, (path, status)


@st.composite
def nested_json(draw: st.DrawFn) -> bytes:
    """JSON (or nearly) nested ``depth`` deep in arrays, objects or both."""
    depth = draw(st.integers(1, 20_000))
    shape = draw(st.sampled_from(["array", "object", "mixed", "envelope"]))
    if shape == "array":
        return b"[" * depth + b"]" * depth
    if shape == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    if shape == "mixed":
        return b'{"a":[' * depth + b"]}" * depth
    return b'{"kind":"x","job":{"job_id":' + b"[" * depth + b"]" * depth + b"}}"


@FUZZ
@given(
    body=nested_json(),
    method_path=st.sampled_from(
        [
            ("POST", "/api/v1/jobs"),
            ("POST", "/api/v1/events"),
            ("POST", "/api/v1/route"),
            ("PUT", "/api/v1/scope"),
            ("PUT", "/api/v1/pools/echo"),
        ]
    ),
)
def test_json_nested_to_any_depth_gets_an_answer_below_500(
    edge: Edge, body: bytes, method_path: tuple[str, str]
) -> None:
    method, path = method_path
    headers = [*edge.signed_in(), ("Content-Type", b"application/json")]
    assert 400 <= edge.send(method, path, headers, body) < 500
