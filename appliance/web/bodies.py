"""Reading request bodies at the edge: whatever bytes a client sends, a malformed body is a
BadRequestBody (400) that says what is wrong, never a library's exception turned into a 500.

aiohttp's form parser raises its own parse errors, ValueError (a missing boundary, bytes that
are not in the form's charset) or LookupError (a charset Python does not know); the standard
library's header parser, which aiohttp reads a Content-Type with, raises IndexError on some
parameters (``text/plain; charset=;p*``); msgspec raises RecursionError for JSON nested deeper
than the interpreter's stack. All are the client's doing, so all are translated here, once,
and each reader uses these.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from appliance.web.errors import BadRequestBody

_FORM_ERRORS = (HttpProcessingError, ValueError, LookupError)
_HEADER_ERRORS = (ValueError, LookupError)  # IndexError is a LookupError


def media_type(request: web.Request) -> str:
    """The body's media type ("application/json"), or BadRequestBody if the Content-Type
    header cannot be read."""
    try:
        return request.content_type
    except _HEADER_ERRORS:
        raise BadRequestBody("malformed Content-Type header") from None


async def read_form(request: web.Request) -> dict[str, str]:
    """The posted form's text fields (files are ignored), or BadRequestBody."""
    try:
        form = await request.post()
    except _FORM_ERRORS as err:
        raise BadRequestBody(f"malformed form: {_reason(err)}") from None
    return {k: v for k, v in form.items() if isinstance(v, str)}


@contextmanager
def decoding(what: str) -> Iterator[None]:
    """Decode ``what`` inside this block: too deep, or not UTF-8, is a BadRequestBody.
    (A msgspec.DecodeError stays the caller's to word.)"""
    try:
        yield
    except RecursionError:
        raise BadRequestBody(f"{what} is nested too deeply") from None
    except UnicodeDecodeError as err:
        raise BadRequestBody(f"{what} is not UTF-8: {err.reason}") from None


def _reason(err: Exception) -> str:
    if isinstance(err, HttpProcessingError):
        return err.message or type(err).__name__
    return str(err) or type(err).__name__
