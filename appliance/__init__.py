"""qEY-0 appliance: a concurrent multi-agent runtime for a network-security device."""

# first, before anything imports onnxruntime: its telemetry is off only if set at its import
from appliance import offline as _offline  # noqa: F401

__version__ = "0.1.0"
