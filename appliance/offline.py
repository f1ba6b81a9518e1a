"""Nothing leaves the device that the admin did not ask for: the switches that keep the
libraries we ship from phoning home.

onnxruntime (1.31 on Linux) starts a telemetry client with its environment: a device id and an
event database under ``~/.cache/Microsoft``, and DNS lookups for Microsoft's event host seconds
after the first session and every few minutes after. It reads ``ORT_DISABLE_TELEMETRY`` when it
is imported (``disable_telemetry_events()`` later is too late: the client already exists), so
the switch must be set before any ``import onnxruntime``. The package's ``__init__`` imports
this module first, which covers every entry point (``qey``, the model's evaluation, tests).
The Hugging Face switches cover tokenizers' optional hub client, which the appliance never
needs (its model ships in the package).
"""

from __future__ import annotations

import os
import sys

SWITCHES = {
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}

# onnxruntime imported before this module, without its switch: its telemetry already runs
IMPORTED_TOO_EARLY = "onnxruntime" in sys.modules and os.environ.get("ORT_DISABLE_TELEMETRY") != "1"
# every switch, whatever the caller's environment says (an inherited "0" must not win)
os.environ.update(SWITCHES)
