"""qEY-0 appliance: a concurrent multi-agent runtime for a network-security device."""

# First, before anything imports onnxruntime or numpy: onnxruntime's telemetry is off only if
# switched off before its import (offline.py), numpy's BLAS threads are sized at its (blas.py).
from appliance import blas as _blas  # noqa: F401
from appliance import offline as _offline  # noqa: F401

__version__ = "0.1.0"
