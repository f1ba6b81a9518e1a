"""The report as JSON: the record itself, which ``decode_report`` reads back."""

from __future__ import annotations

import msgspec

from appliance.reports.model import JobReport

_decoder = msgspec.json.Decoder(JobReport)


def render_json(report: JobReport) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"


def decode_report(body: bytes) -> JobReport:
    """A report as the API sends it; msgspec.ValidationError if it is not one."""
    return _decoder.decode(body)
