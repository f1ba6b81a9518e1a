"""Boot a built image under QEMU (TCG): ``./build.sh qemu --target qemu-amd64``.

The image itself is never written: the guest's disk is a qcow2 overlay on it (larger than the
image, so the data partition grows on first boot, as on a real disk). The panel is forwarded to
127.0.0.1:8080, the display's serial port (a virtio console, the guest's /dev/hvc0) is a TCP
server on
127.0.0.1:4555 that ``qey display-emulator socket://127.0.0.1:4555`` can read, and the console
is this terminal (or a file, for the boot tests).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")


def image_path(target: str) -> Path:
    return ROOT / "build" / "image" / target / f"qey-{target}.img"


def prepare(
    target: str,
    state: Path,
    disk_size: str = "4G",
    fresh: bool = False,
    image: Path | None = None,
) -> Path:
    """The guest's disk (an overlay on the image, or on ``image``: a copy a test edited) and
    firmware variables, in ``state``."""
    state.mkdir(parents=True, exist_ok=True)
    disk = state / "disk.qcow2"
    if fresh or not disk.exists():
        disk.unlink(missing_ok=True)
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
             str(image or image_path(target)), str(disk), disk_size],
            check=True,
        )  # fmt: skip
        vars_src = OVMF_VARS if target == "qemu-amd64" else AAVMF_VARS
        shutil.copy(vars_src, state / "efivars.fd")
        (state / "efivars.fd").chmod(0o644)
    return disk


def command(
    target: str,
    state: Path,
    *,
    console: str = "mon:stdio",
    panel_port: int = 8080,
    broker_port: int | None = None,
    display_port: int = 4555,
    memory_mib: int = 1536,
    monitor: Path | None = None,
    reboot: bool = False,
) -> list[str]:
    """The QEMU command line; ``console`` is a -serial backend (``file:PATH``, ``mon:stdio``).
    ``reboot``: the guest's reboots restart it, as on a board (the update tests' rollbacks);
    otherwise QEMU exits when the guest reboots."""
    disk, efivars = state / "disk.qcow2", state / "efivars.fd"
    forward = f"user,id=net0,hostfwd=tcp:127.0.0.1:{panel_port}-:8080"
    if broker_port is not None:  # the fleet-server role's broker (qey-fleet-broker.service)
        forward += f",hostfwd=tcp:127.0.0.1:{broker_port}-:4222"
    display = f"socket,id=display,host=127.0.0.1,port={display_port},server=on,wait=off"
    if target == "qemu-amd64":
        machine = ["qemu-system-x86_64", "-machine", "q35", "-cpu", "max"]
        code = OVMF_CODE
    else:
        # Not cortex-a72: its ID tells the kernel it needs KPTI (forced by KASLR: no E0PD)
        # and Spectre-v2 firmware calls, and under TCG every kernel entry then flushes QEMU's
        # software TLB: 25 s more of a 75 s boot. TCG executes nothing speculatively, and
        # "max" says so (CSV2, CSV3, E0PD), so the same image's kernel skips them itself.
        # Less what TCG computes slowly and Debian's arm64 build (ARMv8.0) never needs:
        # pointer authentication (QARMA in software), SVE, SME.
        cpu = "max,pauth=off,sve=off,sme=off"
        machine = ["qemu-system-aarch64", "-machine", "virt", "-cpu", cpu]

        code = AAVMF_CODE
    return [
        *machine,
        "-accel", "tcg",
        "-smp", str(min(2, os.cpu_count() or 1)),
        "-m", str(memory_mib),
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={efivars}",
        "-drive", f"file={disk},if=virtio,format=qcow2",
        "-netdev", forward,
        "-device", "virtio-net-pci,netdev=net0",
        "-serial", console,
        # the display's port: a virtio console (the guest's /dev/hvc0) on a host TCP socket,
        # the same on both machines (the arm64 virt machine has only one UART)
        "-device", "virtio-serial-pci",
        "-chardev", display,
        "-device", "virtconsole,chardev=display,name=qey.display",
        "-display", "none",
        # a hardware watchdog (PCI, so on both machines) that systemd pets; when it bites it
        # resets the machine, as the board's does
        "-device", "i6300esb",
        "-action", "watchdog=reset",
        *([] if reboot else ["-no-reboot"]),
        *(["-monitor", f"unix:{monitor},server=on,wait=off"] if monitor else []),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="qemu-amd64", choices=["qemu-amd64", "qemu-arm64"])
    parser.add_argument("--state", type=Path, help="where the disk overlay lives")
    parser.add_argument("--fresh", action="store_true", help="start from the image again")
    parser.add_argument("--panel-port", type=int, default=8080)
    parser.add_argument("--display-port", type=int, default=4555)
    args = parser.parse_args()
    state = args.state or ROOT / "build" / "qemu" / args.target
    if not image_path(args.target).exists():
        raise SystemExit(f"no image: run ./build.sh image --target {args.target} first")
    prepare(args.target, state, fresh=args.fresh)
    cmd = command(args.target, state, panel_port=args.panel_port, display_port=args.display_port)
    print(
        f"==> panel http://127.0.0.1:{args.panel_port}/ · display: qey display-emulator "
        f"socket://127.0.0.1:{args.display_port} · quit: Ctrl-A X\n    {' '.join(cmd)}",
        file=sys.stderr,
    )
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
