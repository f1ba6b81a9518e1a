"""The scenario the no-egress test traces: run inside a fresh network namespace, under strace.

Run as ``python -m tests.integration.egress_scenario DATA_DIR SECONDS``. It opens two ports
on 127.0.0.1 (the only things scanned), starts ``qey run`` with the panel on, routes a
command, runs a posture scan through the running appliance, and keeps the appliance up for
SECONDS after it is ready (long enough for a library's background client to call home: the
onnxruntime telemetry that this guards against first did so ~8 s after the first session),
then stops it. Every line it prints is for the test's failure message.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def qey(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def main(data_dir: Path, hold_s: float) -> int:
    listeners = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        listeners.append(s)
    ports = ",".join(str(s.getsockname()[1]) for s in listeners)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (data_dir / "config.toml").write_text('scope = ["127.0.0.0/29"]\n')
    env = {**os.environ, "QEY_DATA_DIR": str(data_dir), "QEY_WEB_LISTEN": "127.0.0.1:8080"}
    appliance = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=(data_dir.parent / "appliance.log").open("w"),
        text=True,
    )
    try:
        assert appliance.stdout is not None
        for line in appliance.stdout:  # until it is ready, or ends
            print(line, end="", flush=True)
            if line.startswith("qey ready"):
                break
        else:
            return 1
        ready = time.monotonic()
        routed = qey("route", "check which ports are open on 127.0.0.1", env=env)
        print("route:", routed.returncode, routed.stdout.strip(), flush=True)
        scanned = qey(
            "submit",
            "--wait",
            f"analyze network security posture of 127.0.0.1 ports {ports}",
            env=env,
        )
        print("submit:", scanned.returncode, scanned.stdout.strip(), flush=True)
        time.sleep(max(0.0, hold_s - (time.monotonic() - ready)))
        return 0 if routed.returncode == 0 and scanned.returncode == 0 else 1
    finally:
        appliance.send_signal(signal.SIGTERM)
        appliance.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), float(sys.argv[2])))
