"""Build the qEY-0 OS image: ``./build.sh image --target qemu-amd64|qemu-arm64|qey0``.

No Docker and no loop mounts: mmdebstrap writes the Debian base to a tarball; the root tree is
that tarball unpacked, with the appliance's venv (wheels for the target's architecture, never
pip under emulation), the router model (inside the appliance package) and rootfs-overlay/ laid
in; ext4 filesystems are made from directories (``mkfs.ext4 -d``), the ESP with mkfs.fat and
mtools, and the GPT is written into a plain file with sfdisk. Each stage is cached by the hash
of its inputs under ~/.cache/qey-image/ (or $QEY_IMAGE_CACHE), so an unchanged base is never
rebuilt, not even in a fresh clone.

Outputs in build/image/<target>/: qey-<target>.img (raw), .img.zst, their .sha256 files, and
manifest.json (Debian package versions, wheel hashes, model hash, git commit).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from bundle import signing_key

ROOT = Path(__file__).resolve().parents[1]
FIRST_ENTRY = "qey-000001-a.conf"  # slot A's boot entry, known good (no boot counter)
OUT = ROOT / "build" / "image"
# Outside the checkout, so a fresh clone (CI) reuses a base whose inputs have not changed.
CACHE = Path(os.environ.get("QEY_IMAGE_CACHE") or Path.home() / ".cache" / "qey-image")
SUITE = "bookworm"
# $QEY_DEBIAN_MIRROR pins the packages where a dated mirror is reachable, e.g.
# http://snapshot.debian.org/archive/debian/20261101T000000Z: a cold base built on another day
# then has the same packages (it is part of the base's cache key either way).
MIRROR = os.environ.get("QEY_DEBIAN_MIRROR") or "http://deb.debian.org/debian"
PYTHON = "3.11"  # bookworm's python3; the venv's wheels are built for it
MiB = 1024 * 1024
ESP_MIB = 128  # room for two kernels and initrds (slots A and B)
DATA_MIB = 128  # grows to the end of the disk on first boot
ROOT_MIN_MIB = 1024
NAMESPACE = uuid.UUID("7f0c6f4e-2b1d-4c55-9a54-5e2f1d0a9e01")  # fixed ids: same image, same GPT

GPT_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
GPT_ROOT = {
    "amd64": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
    "arm64": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
}
GPT_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


@dataclass(frozen=True)
class Target:
    arch: str
    kernel: str
    console: str
    efi_binary: str  # systemd-boot's, named as the removable-media path wants it
    machine: str  # wheels' platform tag: manylinux for this machine, glibc <= bookworm's 2.36

    @property
    def pip_platforms(self) -> list[str]:
        tags = [f"manylinux_2_{v}_{self.machine}" for v in range(36, 16, -1)]
        return [*tags, f"manylinux2014_{self.machine}"]

    def pip_target_args(self) -> list[str]:
        abi = f"cp{PYTHON.replace('.', '')}"
        return [
            "--only-binary=:all:",
            *(a for p in self.pip_platforms for a in ("--platform", p)),
            "--python-version",
            PYTHON,
            "--implementation",
            "cp",
            "--abi",
            abi,
            "--abi",
            "abi3",
        ]


ARM64 = Target(
    arch="arm64",
    kernel="linux-image-arm64",
    console="ttyAMA0",
    efi_binary="BOOTAA64.EFI",
    machine="aarch64",
)
TARGETS = {
    "qemu-amd64": Target(
        arch="amd64",
        kernel="linux-image-cloud-amd64",
        console="ttyS0",
        efi_binary="BOOTX64.EFI",
        machine="x86_64",
    ),
    "qemu-arm64": ARM64,  # qey0 and qemu-arm64 are one image; select-board tells them apart
    "qey0": ARM64,
}

PACKAGES = [
    "systemd",
    "systemd-sysv",
    "udev",
    "initramfs-tools",
    "zstd",
    "python3",
    "systemd-boot-efi",
    "fdisk",
    "e2fsprogs",
    "nftables",  # the appliance user's egress policy (qey-egress.service)
    # updates: RAUC writes a signed bundle into the other root slot (its D-Bus service, which
    # qey update asks), unsquashfs reads a bundle through before anything is written
    "rauc",
    "rauc-service",
    "squashfs-tools",
    # the fleet-server role's broker (qey-fleet-broker.service, off until config.toml asks)
    "nats-server",
]
EXCLUDES = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/lintian/*",
]
# Run by mmdebstrap; part of the base's cache key.
ESSENTIAL_HOOK = (
    'mkdir -p "$1/etc/initramfs-tools/conf.d" && '
    'echo COMPRESS=zstd > "$1/etc/initramfs-tools/conf.d/qey.conf"'
)
CUSTOMIZE_HOOK = (
    'chroot "$1" groupadd --system gpio && '
    'chroot "$1" useradd --system --user-group --home-dir /data/qey --no-create-home '
    "--shell /usr/sbin/nologin --groups dialout,gpio qey && "
    'echo qey0 > "$1/etc/hostname" && : > "$1/etc/machine-id" && '
    'rm -f "$1/etc/resolv.conf" && ln -s /run/systemd/resolve/resolv.conf "$1/etc/resolv.conf"'
)
ENABLE = {  # unit -> target.wants it goes into
    "qey.service": "multi-user.target",
    "qey-data.service": "local-fs.target",
    "systemd-networkd.service": "multi-user.target",
    "qey-egress.path": "multi-user.target",
    "qey-actions.path": "multi-user.target",
    "qey-update-boot.service": "multi-user.target",
    "qey-update-gate.service": "multi-user.target",
    "qey-update.path": "multi-user.target",
    "qey-fleet-broker.service": "multi-user.target",  # runs only with [fleet.server]
}
# Kernel modules for hardware a wired network appliance does not have (Wi-Fi, sound, video
# capture, InfiniBand, discrete PCIe GPUs, Fibre Channel) and the kernel's self-tests: a third
# of the arm64 kernel's modules, left out of the root (modules.dep is then remade).
MODULES_LEFT_OUT = [
    "drivers/net/wireless",
    "net/wireless",
    "net/mac80211",
    "drivers/media",
    "sound",
    "drivers/infiniband",
    "drivers/gpu/drm/amd",
    "drivers/gpu/drm/nouveau",
    "drivers/gpu/drm/radeon",
    "drivers/scsi/lpfc",
    "drivers/scsi/qla2xxx",
    "drivers/isdn",
    "lib/test_*.ko",
]
# Wheels the appliance never imports: tokenizers' model downloader (huggingface-hub and its
# HTTP stack; the model ships in the package) and sqlite-utils' plugin installer (pip).
WHEELS_LEFT_OUT = [
    "huggingface_hub",
    "hf_xet",
    "httpx2",
    "httpcore2",
    "anyio",
    "fsspec",
    "filelock",
    "pip",
    "setuptools",
]
# Published as source only, and pure Python: made into a wheel here by pip (a py3-none-any
# wheel, the same for every target; nothing of it is compiled). Its own dependency (PyNaCl,
# native) is in pyproject.toml, downloaded as the target's wheel like the rest.
PURE_SOURCE_ONLY = ["nkeys"]
# hvc0 is the display's port under QEMU (hw/boards/qemu.toml), not a login console
MASK = [
    "serial-getty@hvc0.service",
    # the health gate (qey-update-gate.service) commits a slot through RAUC, which drops the
    # boot counter itself: systemd's own blessing would only race it
    "systemd-bless-boot.service",
    # RAUC's D-Bus brings the bus into the image, and logind starts with the bus (and fails,
    # again and again, on a read-only root): the appliance has no user sessions to manage
    "systemd-logind.service",
    # Boot work a headless appliance with a read-only root has no use for, each a process
    # or more started under TCG at the busiest moment of the boot: logins on the six virtual
    # terminals (no screen; the serial console keeps its login), ext4 snapshot checks for LVM
    # (there is none), binfmt (nothing registers any), apt and dpkg timers (the root is
    # read-only: updates come as a whole root).
    "getty-static.service",
    "getty@tty1.service",
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "systemd-binfmt.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    # Debian's broker unit listens with no authentication; the fleet-server role's unit
    # (qey-fleet-broker.service) runs the same nats-server with the devices' keys alone
    "nats-server.service",
]


class Step:
    """Progress: each step's name, number and time, on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.t0 = total, 0, time.monotonic()

    def __call__(self, what: str) -> None:
        self.n += 1
        print(
            f"==> [{self.n}/{self.total}] {what}  (+{time.monotonic() - self.t0:.0f} s)",
            file=sys.stderr,
            flush=True,
        )


def run(*cmd: str | Path, env: dict[str, str] | None = None, **kw: object) -> None:
    subprocess.run([str(c) for c in cmd], check=True, env={**os.environ, **(env or {})}, **kw)  # type: ignore[call-overload]


def out(*cmd: str | Path) -> str:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def git(*args: str) -> str:
    return out("git", "-C", ROOT, *args).strip()


def source_files() -> list[Path]:
    """The tracked and new (not ignored) files that go into the image."""
    names = git(
        "ls-files",
        "-co",
        "--exclude-standard",
        "--",
        "appliance",
        "pyproject.toml",
        "README.md",
        "hw",
        "rootfs-overlay",
    ).splitlines()
    return sorted(ROOT / n for n in names if (ROOT / n).is_file())


# --- the cached inputs, and the parts the stages below are made of ----------------------------


def base_tarball(target: Target, epoch: int) -> Path:
    """Debian minbase + systemd + kernel + python3 from mmdebstrap; cached by its inputs."""
    key = digest(
        SUITE,
        MIRROR,
        target.arch,
        target.kernel,
        PACKAGES,
        EXCLUDES,
        ESSENTIAL_HOOK,
        CUSTOMIZE_HOOK,
    )
    tar = CACHE / f"base-{target.arch}-{key}.tar"
    if tar.exists():
        print(f"    cached: {tar}", file=sys.stderr)
        return tar
    tmp = tar.with_suffix(".tmp.tar")
    slow = "; its initramfs under qemu-user is most of it" if target.arch == "arm64" else ""
    with ticking(f"building the {target.arch} base{slow}"):
        _mmdebstrap(target, tmp, epoch)
    tmp.rename(tar)
    return tar


@contextlib.contextmanager
def ticking(what: str, every_s: float = 60.0) -> Iterator[None]:
    """A line every minute while a long step runs silently (mmdebstrap says nothing for the
    quarter of an hour an arm64 base takes)."""
    done = threading.Event()
    t0 = time.monotonic()

    def tick() -> None:
        while not done.wait(every_s):
            minutes = (time.monotonic() - t0) / 60
            print(f"    ... {what} ({minutes:.0f} min so far)", file=sys.stderr, flush=True)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


def _mmdebstrap(target: Target, tmp: Path, epoch: int) -> None:
    run(
        "mmdebstrap",
        "--variant=minbase",
        f"--architectures={target.arch}",
        f"--include={','.join([*PACKAGES, target.kernel])}",
        *(f"--dpkgopt={e}" for e in EXCLUDES),
        f"--essential-hook={ESSENTIAL_HOOK}",
        f"--customize-hook={CUSTOMIZE_HOOK}",
        SUITE,
        tmp,
        MIRROR,
        env={"SOURCE_DATE_EPOCH": str(epoch)},
    )


def requirements() -> list[str]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def wheels(target: Target) -> Path:
    """The appliance's dependencies as wheels for the target (never built, never emulated)."""
    reqs = requirements()
    key = digest(reqs, target.pip_platforms, PYTHON)
    dest = CACHE / f"wheels-{target.arch}-{key}"
    if dest.exists():
        print(f"    cached: {dest}", file=sys.stderr)
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pure = [r for r in reqs if _project(r) in PURE_SOURCE_ONLY]
    run(
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--dest",
        tmp,
        *target.pip_target_args(),
        *(r for r in reqs if r not in pure),
    )
    if pure:
        run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", tmp, *pure)
    tmp.rename(dest)
    return dest


def _project(requirement: str) -> str:
    """The project a requirement names ("nkeys==0.2.1  # ..." is "nkeys")."""
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower()


def app_wheel(work: Path) -> Path:
    """The appliance itself (pure Python, the router model inside), built from a copy of the
    source so nothing untracked or built here gets in."""
    src = work / "src"
    for f in source_files():
        dst = src / f.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst)
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--disable-pip-version-check",
        "-w",
        work / "app",
        src,
    )
    (wheel,) = (work / "app").glob("qey_appliance-*.whl")
    return wheel


def runtime_wheels(wheel_dir: Path) -> list[Path]:
    """The downloaded wheels (the requirements' whole closure) less those never imported."""
    return [
        w for w in sorted(wheel_dir.glob("*.whl")) if w.name.split("-")[0] not in WHEELS_LEFT_OUT
    ]


def trim_kernel_modules(tree: Path) -> None:
    """Leave out MODULES_LEFT_OUT and remake modules.dep with the host's depmod."""
    for kernel_dir in sorted((tree / "usr/lib/modules").iterdir()):
        for pattern in MODULES_LEFT_OUT:
            for path in (kernel_dir / "kernel").glob(pattern):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        run("depmod", "-b", tree, kernel_dir.name)


def install_venv(tree: Path, wheel_dir: Path, app: Path, target: Target) -> None:
    """/opt/qey/venv: the image's own python3 plus site-packages unpacked from the wheels on
    this host, byte-compiled here (unchecked-hash .pycs: the root is read-only)."""
    venv = tree / "opt" / "qey" / "venv"
    site = venv / "lib" / f"python{PYTHON}" / "site-packages"
    (venv / "bin").mkdir(parents=True)
    run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "--no-index",
        "--find-links",
        wheel_dir,
        "--no-compile",
        "--no-deps",
        *target.pip_target_args(),
        "--target",
        site,
        *runtime_wheels(wheel_dir),
        app,
    )
    shutil.rmtree(site / "bin", ignore_errors=True)  # scripts for this host's python
    (venv / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {PYTHON}\n"
    )
    (venv / "bin" / "python3").symlink_to(f"/usr/bin/python{PYTHON}")
    (venv / "bin" / "python").symlink_to("python3")
    qey = venv / "bin" / "qey"
    qey.write_text(
        "#!/opt/qey/venv/bin/python3\nimport sys\n\nfrom appliance.cli import main\n\n"
        "sys.exit(main())\n"
    )
    qey.chmod(0o755)
    run(
        sys.executable,
        "-m",
        "compileall",
        "-q",
        "-j0",
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        tree,
        "-p",
        "/",
        site,
        stdout=subprocess.DEVNULL,
    )


def lay_overlay(tree: Path, board_dir: Path) -> None:
    overlay = ROOT / "rootfs-overlay"
    for f in source_files():
        if overlay not in f.parents or f.name == "README.md":
            continue
        dst = tree / f.relative_to(overlay)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst)
        os.chown(dst, 0, 0)
    boards = tree / "etc" / "qey" / "boards"
    boards.mkdir(parents=True)
    for b in sorted(board_dir.glob("*.toml")):
        shutil.copy2(b, boards / b.name)
    rules = tree / "etc" / "udev" / "rules.d"
    rules.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "hw" / "udev" / "99-qey.rules", rules / "99-qey.rules")
    for unit, wanted_by in ENABLE.items():
        wants = tree / "etc" / "systemd" / "system" / f"{wanted_by}.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / unit
        link.unlink(missing_ok=True)
        where = (
            "etc/systemd/system"
            if (tree / "etc/systemd/system" / unit).exists()
            else "usr/lib/systemd/system"
        )
        link.symlink_to(f"/{where}/{unit}")
    for unit in MASK:
        (tree / "etc" / "systemd" / "system" / unit).symlink_to("/dev/null")
    (tree / "data").mkdir(exist_ok=True)


INITRAMFS_CONFIG = [
    "etc/initramfs-tools/modules",
    "etc/initramfs-tools/conf.d/qey-modules.conf",
    "etc/initramfs-tools/scripts/init-top/udev",
    "etc/initramfs-tools/hooks/qey-systemd-devices",
]


def remake_initramfs(tree: Path, base: Path, arch: str) -> None:
    """The initramfs again, from rootfs-overlay's initramfs-tools config (only the root's
    drivers, udev for the root's block device only) instead of the base's "most modules, every
    device": 12 s less of every boot under TCG. update-initramfs takes most of a minute under
    qemu-user, so the result is kept beside the bases, keyed by the base and that config."""
    overlay = ROOT / "rootfs-overlay"
    key = digest(base.name, [(name, sha256(overlay / name)) for name in INITRAMFS_CONFIG])
    kept = CACHE / f"initrd-{arch}-{key}.img"
    (initrd,) = (tree / "boot").glob("initrd.img-*")
    if kept.exists():
        print(f"    cached: {kept}", file=sys.stderr)
    else:
        with ticking("the initramfs (update-initramfs in the root tree)"):
            run("chroot", tree, "update-initramfs", "-u", "-k", "all", stdout=subprocess.DEVNULL)
        fresh = kept.with_suffix(".tmp")
        shutil.copy2(initrd, fresh)
        fresh.rename(kept)
    shutil.copy2(kept, initrd)


def seed_router_cache(tree: Path, data_dir: Path, arch: str) -> None:
    """The router's phrase cache (vectors and type head), made by the image's own python,
    venv and model in a chroot of the root tree, so the first boot does not spend minutes of
    TCG on it. The cache names the model, provider, onnxruntime and machine, so the guest uses
    it only where it would compute the same vectors, up to the float rounding of whichever CPU
    kernels ran (the chroot has no /proc or /sys, so onnxruntime says it cannot detect the
    CPU's features and takes generic ones).

    Under qemu-user a phrase takes most of a second to embed and the type head minutes to fit,
    so the last build's cache is kept beside the bases (``router-ARCH/``) and handed in: the
    router embeds only phrases it has not seen and refits the head only when what it is
    fitted from changed (the cache's own rules, checked by its fingerprint and digests).
    """
    print("    router phrase cache: the image's qey route in a chroot", file=sys.stderr, flush=True)
    kept = CACHE / f"router-{arch}"
    seed = tree / "tmp" / "qey-seed"
    seed.mkdir(parents=True)
    if kept.is_dir():
        shutil.copytree(kept, seed / "router")
    try:
        with ticking("embedding the router's new phrases under emulation"):
            run(
                "chroot",
                tree,
                "/opt/qey/venv/bin/qey",
                "route",
                "warm up",
                env={
                    "QEY_DATA_DIR": "/tmp/qey-seed",
                    "QEY_BOARD": "/etc/qey/boards/qemu.toml",
                    "PYTHONDONTWRITEBYTECODE": "1",
                    "HOME": "/tmp",
                },
                stdout=subprocess.DEVNULL,
            )
        fresh = kept.with_name(kept.name + ".tmp")
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(seed / "router", fresh)
        shutil.rmtree(kept, ignore_errors=True)
        fresh.rename(kept)
        shutil.move(seed / "router", data_dir / "router")
    finally:
        shutil.rmtree(seed, ignore_errors=True)


def owner(tree: Path, user: str) -> tuple[int, int]:
    for line in (tree / "etc" / "passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3])
    raise SystemExit(f"no user {user} in the image")


def dpkg_versions(tree: Path) -> dict[str, str]:
    versions: dict[str, str] = {}
    for para in (tree / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", para, re.M))
        if fields.get("Status", "").endswith(" installed"):
            arch = fields.get("Architecture", "")
            versions[fields["Package"] + (f":{arch}" if arch not in ("all", "") else "")] = fields[
                "Version"
            ]
    return dict(sorted(versions.items()))


def du_bytes(path: Path) -> int:
    return int(out("du", "-sb", "--apparent-size", path).split()[0])


def mkfs_ext4(
    image: Path, source: Path, label: str, size_mib: int, fs_uuid: str, epoch: int
) -> None:
    run(
        "mkfs.ext4",
        "-q",
        "-F",
        "-L",
        label,
        "-U",
        fs_uuid,
        "-E",
        f"hash_seed={fs_uuid},root_owner=0:0",
        "-d",
        source,
        image,
        f"{size_mib}M",
        env={"E2FSPROGS_FAKE_TIME": str(epoch)},
    )


def make_esp(image: Path, boot: BootFiles, target: Target, cmdline: str, volume_id: str) -> None:
    run(
        "mkfs.fat",
        "-C",
        "-F",
        "32",
        "-n",
        "ESP",
        "-i",
        volume_id,
        image,
        str(ESP_MIB * 1024),
        stdout=subprocess.DEVNULL,
    )
    env = {"MTOOLS_SKIP_CHECK": "1"}
    run(
        "mmd",
        "-i",
        image,
        "::/EFI",
        "::/EFI/BOOT",
        "::/loader",
        "::/loader/entries",
        "::/qey",
        "::/qey/a",
        env=env,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        # the newest slot not out of tries boots (appliance/update/entries.py)
        (t / "loader.conf").write_text("default qey-*\ntimeout 0\nconsole-mode keep\n")
        (t / FIRST_ENTRY).write_text(
            "title qEY-0 (slot A)\nlinux /qey/a/vmlinuz\ninitrd /qey/a/initrd.img\n"
            f"options {cmdline}\n"
        )
        for src, dst in [
            (boot.loader, "::/EFI/BOOT/" + target.efi_binary),
            (boot.kernel, "::/qey/a/vmlinuz"),
            (boot.initrd, "::/qey/a/initrd.img"),
            (t / "loader.conf", "::/loader/loader.conf"),
            (t / FIRST_ENTRY, f"::/loader/entries/{FIRST_ENTRY}"),
        ]:
            run("mcopy", "-i", image, "-m", src, dst, env=env)


def write_sparse(disk: Path, offset: int, part: Path) -> None:
    """Copy a filesystem image into the disk file at offset, leaving zeros as holes."""
    zeros = bytes(MiB)
    with part.open("rb") as src, disk.open("r+b") as dst:
        dst.seek(offset)
        while chunk := src.read(MiB):
            if chunk == zeros[: len(chunk)]:
                dst.seek(len(chunk), os.SEEK_CUR)
            else:
                dst.write(chunk)


def write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


# --- the build: its records and stages, in the order build() runs them ------------------------


@dataclass(frozen=True, slots=True)
class Checkout:
    """The commit the image is made from, read once before the first stage: its time is the
    build's SOURCE_DATE_EPOCH (the base's and the ext4 filesystems'), and the manifest names
    it."""

    commit: str
    epoch: int
    dirty: bool  # uncommitted changes under what the image is made from

    @classmethod
    def read(cls) -> Checkout:
        epoch = int(git("log", "-1", "--format=%ct"))
        commit = git("rev-parse", "HEAD")
        dirty = bool(
            git(
                "status",
                "--porcelain",
                "--",
                "appliance",
                "pyproject.toml",
                "hw",
                "rootfs-overlay",
                "image",
            )
        )
        return cls(commit=commit, epoch=epoch, dirty=dirty)


@dataclass(frozen=True, slots=True)
class Build:
    """What every stage after the up-to-date check reads, so that a stage's other arguments
    are only what earlier stages made: an update bundle's stage can take the same ones."""

    name: str  # in every id: qemu-arm64 and qey0 are one recipe with their own ids
    target: Target
    checkout: Checkout
    ids: dict[str, str]  # partition_ids(name)
    work: Path  # scratch beside the outputs, removed after the build

    @property
    def dest(self) -> Path:
        return OUT / self.name

    @property
    def raw(self) -> Path:
        return raw_image(self.name)


@dataclass(frozen=True, slots=True)
class BootFiles:
    """What a slot boots, taken out of the root tree: the ESP carries the kernel and initrd
    (one pair per slot), so the read-only root needs no copy."""

    kernel: Path
    initrd: Path
    loader: Path  # systemd-boot's EFI binary, the ESP's default boot path


@dataclass(frozen=True, slots=True)
class RootFilesystem:
    """Slot A's ext4 image; root-B gets a partition of the same size for the next version."""

    image: Path
    mib: int
    used_bytes: int  # the tree's apparent size, what the partition size follows


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    mib: int
    type_guid: str


def raw_image(name: str) -> Path:
    return OUT / name / f"qey-{name}.img"


def partition_ids(name: str) -> dict[str, str]:
    """Derived from the target's name alone: the same image always has the same GPT and
    filesystem UUIDs, and the kernel command line can name the root before any exists."""
    return {
        p: str(uuid.uuid5(NAMESPACE, f"{name}/{p}"))
        for p in ("disk", "esp", "root-a", "root-b", "data", "fs-root-a", "fs-data")
    }


def kernel_cmdline(target: Target, ids: dict[str, str]) -> str:
    """Slot A's; panic=10: a slot that cannot boot reboots, and the loader counts the try."""
    return (
        f"root=PARTUUID={ids['root-a']} ro rootfstype=ext4 rootwait "
        f"console={target.console},115200 quiet systemd.show_status=1 qey.slot=a "
        "rauc.slot=a panic=10"
    )


def inputs_digest(name: str, base: Path, wheel_dir: Path, epoch: int) -> str:
    """Everything the image is made from (the cached stages by their keys, the sources by
    content, this recipe itself): when it matches the last build's, the build is skipped."""
    return digest(
        base.name,
        wheel_dir.name,
        name,
        [(str(f.relative_to(ROOT)), sha256(f)) for f in source_files()],
        sha256(Path(__file__)),
        sha256(signing_key()[1]),  # the image checks bundles against this certificate
        epoch,
    )


def up_to_date(name: str, inputs: str) -> bool:
    stamp = OUT / name / "inputs"
    return stamp.exists() and stamp.read_text() == inputs and raw_image(name).exists()


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """The build's work directory, under OUT so that a finished disk image is renamed into
    place rather than copied; removed whatever happens."""
    work = Path(tempfile.mkdtemp(prefix="image-", dir=OUT))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def root_tree(b: Build, base: Path, wheel_dir: Path, app: Path) -> Path:
    """What the root filesystem holds, kernel and initrd still in /boot (the ESP stage takes
    them out)."""
    tree = b.work / "root"
    tree.mkdir()
    run("tar", "-xpf", base, "--numeric-owner", "-C", tree)
    install_venv(tree, wheel_dir, app, b.target)
    trim_kernel_modules(tree)
    lay_overlay(tree, ROOT / "hw" / "boards")
    update_config(b, tree)
    remake_initramfs(tree, base, b.target.arch)
    return tree


def update_config(b: Build, tree: Path) -> None:
    """What updates need in the root: RAUC's config (this image's compatible string, the two
    root slots, the boot loader backend), the update key's certificate to check bundles
    against, this image's version, and the ESP's mount point."""
    rauc = tree / "etc" / "rauc"
    rauc.mkdir(parents=True, exist_ok=True)
    (rauc / "system.conf").write_text(system_conf(b.target))
    _key, cert = signing_key()
    shutil.copyfile(cert, rauc / "keyring.pem")
    (tree / "usr/lib/qey").mkdir(parents=True, exist_ok=True)
    (tree / "usr/lib/qey/image-version").write_text(image_version(b.checkout.epoch) + "\n")
    (tree / "efi").mkdir(exist_ok=True)


def compatible(target: Target) -> str:
    """What a bundle must be for: one per image (qey0 and qemu-arm64 share the arm64 one)."""
    return f"qey-{target.arch}"


def image_version(epoch: int) -> str:
    """The package's version and the commit's time: newer commits, newer images (PEP 440)."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    return f"{version}+{epoch}"


def system_conf(target: Target) -> str:
    return (
        "[system]\n"
        f"compatible={compatible(target)}\n"
        "bootloader=custom\n"
        "data-directory=/data/rauc\n"
        "bundle-formats=-plain\n\n"
        "[handlers]\n"
        "bootloader-custom-backend=/usr/lib/qey/rauc-boot\n\n"
        "[keyring]\n"
        "path=/etc/rauc/keyring.pem\n\n"
        "[slot.rootfs.0]\n"
        "device=/dev/disk/by-partlabel/root-a\n"
        "type=ext4\n"
        "bootname=a\n\n"
        "[slot.rootfs.1]\n"
        "device=/dev/disk/by-partlabel/root-b\n"
        "type=ext4\n"
        "bootname=b\n"
    )


def data_tree(b: Build, tree: Path) -> Path:
    """/data as the first boot finds it: the appliance's home, its user's alone, holding the
    router's phrase cache so that boot does not compute it under TCG."""
    data = b.work / "data"
    home = data / "qey"
    uid, gid = owner(tree, "qey")
    home.mkdir(parents=True)
    seed_router_cache(tree, home, b.target.arch)
    for path in [home, *home.rglob("*")]:
        os.chown(path, uid, gid)
    home.chmod(0o700)
    return data


def take_boot_files(b: Build, tree: Path) -> BootFiles:
    """Copied (timestamps kept) for the ESP. The root keeps them in /boot, linked as
    /boot/vmlinuz and /boot/initrd.img: an update's root filesystem carries its own kernel,
    which the boot loader backend copies to the ESP when it makes that slot primary."""
    kernel = max((tree / "boot").glob("vmlinuz-*"))
    initrd = tree / "boot" / kernel.name.replace("vmlinuz", "initrd.img")
    efi = {"amd64": "systemd-bootx64.efi", "arm64": "systemd-bootaa64.efi"}[b.target.arch]
    boot = b.work / "boot"
    boot.mkdir()
    taken = BootFiles(
        kernel=boot / "vmlinuz", initrd=boot / "initrd.img", loader=boot / b.target.efi_binary
    )
    shutil.copy2(kernel, taken.kernel)
    shutil.copy2(initrd, taken.initrd)
    shutil.copy2(tree / "usr/lib/systemd/boot/efi" / efi, taken.loader)
    for link in ("vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"):
        (tree / link).unlink(missing_ok=True)
    for path in (tree / "boot").glob("*.old"):
        path.unlink()
    for link, to in (("vmlinuz", kernel.name), ("initrd.img", initrd.name)):
        (tree / "boot" / link).unlink(missing_ok=True)
        (tree / "boot" / link).symlink_to(to)
    return taken


def esp_image(b: Build, boot: BootFiles, cmdline: str) -> Path:
    image = b.work / "esp.vfat"
    make_esp(image, boot, b.target, cmdline, b.ids["esp"][:8])
    return image


def root_filesystem(b: Build, tree: Path) -> RootFilesystem:
    """Sized from what the tree holds (plus 30 %, in 64 MiB steps, at least ROOT_MIN_MIB), so
    the root partitions grow with the image and never by hand."""
    used = du_bytes(tree)
    mib = max(ROOT_MIN_MIB, -(-int(used * 1.3) // (64 * MiB)) * 64)
    print(f"    root-a: {mib} MiB, {used / 1e6:.0f} MB used", file=sys.stderr)
    image = b.work / "root.ext4"
    mkfs_ext4(image, tree, "root-a", mib, b.ids["fs-root-a"], b.checkout.epoch)
    return RootFilesystem(image=image, mib=mib, used_bytes=used)


def data_filesystem(b: Build, data: Path) -> Path:
    image = b.work / "data.ext4"
    mkfs_ext4(image, data, "data", DATA_MIB, b.ids["fs-data"], b.checkout.epoch)
    return image


def partition_layout(target: Target, root_mib: int) -> list[Partition]:
    return [
        Partition("esp", ESP_MIB, GPT_ESP),
        Partition("root-a", root_mib, GPT_ROOT[target.arch]),
        Partition("root-b", root_mib, GPT_ROOT[target.arch]),
        Partition("data", DATA_MIB, GPT_LINUX),
    ]


def gpt_disk(b: Build, layout: list[Partition], filesystems: dict[str, Path]) -> Path:
    """The raw disk: a GPT written by sfdisk into a sparse file, each partition's filesystem
    at its offset (one not in filesystems, root-B, stays empty). Renamed into place whole, so
    an interrupted build never leaves a half-written image under the final name."""
    total_mib = 1 + sum(p.mib for p in layout) + 1
    disk = b.work / "disk.img"
    with disk.open("wb") as f:
        f.truncate(total_mib * MiB)
    lines = ["label: gpt", f"label-id: {b.ids['disk']}", "unit: sectors", "first-lba: 2048"]
    start = 1
    offsets = {}
    for p in layout:
        offsets[p.name] = start * MiB
        lines.append(
            f"start={start * 2048}, size={p.mib * 2048}, type={p.type_guid}, "
            f'uuid={b.ids[p.name]}, name="{p.name}"'
        )
        start += p.mib
    run(
        "sfdisk",
        "-q",
        "--no-reread",
        "--no-tell-kernel",
        disk,
        input="\n".join(lines) + "\n",
        text=True,
    )
    for name, fs in filesystems.items():
        write_sparse(disk, offsets[name], fs)
    os.replace(disk, b.raw)
    return b.raw


def keep_for_bundles(b: Build, root: RootFilesystem) -> None:
    """Slot A's root filesystem, its compatible string and version, for ./build.sh bundle."""
    os.replace(root.image, b.dest / "root.ext4")
    (b.dest / "compatible").write_text(compatible(b.target) + "\n")
    (b.dest / "version").write_text(image_version(b.checkout.epoch) + "\n")


def compress(raw: Path) -> Path:
    """raw.zst beside raw, and a .sha256 for each."""
    zst = raw.with_name(raw.name + ".zst")
    run("zstd", "-q", "-f", "-T0", "-10", "--sparse", raw, "-o", zst)
    for made in (raw, zst):
        made.with_name(made.name + ".sha256").write_text(f"{sha256(made)}  {made.name}\n")
    return zst


def image_manifest(
    b: Build, cmdline: str, layout: list[Partition], tree: Path, wheel_dir: Path, app: Path
) -> dict[str, object]:
    """What the image holds, by version and hash: two builds of one commit give the same one
    (tests/qemu/test_image_manifest.py), so it names a root filesystem as well as the disk."""
    model_dir = ROOT / "appliance" / "router" / "model"
    return {
        "target": b.name,
        "target_config": asdict(b.target),
        "suite": SUITE,
        "git_commit": b.checkout.commit,
        "git_dirty": b.checkout.dirty,
        "source_date_epoch": b.checkout.epoch,
        "kernel_cmdline": cmdline,
        "partitions": [
            {"name": p.name, "mib": p.mib, "type": p.type_guid, "uuid": b.ids[p.name]}
            for p in layout
        ],
        "debian_packages": dpkg_versions(tree),
        "wheels": {w.name: sha256(w) for w in runtime_wheels(wheel_dir)},
        "appliance_wheel_files": _wheel_record_hash(app),
        "model": {f.name: sha256(f) for f in sorted(model_dir.glob("*")) if f.name != "SHA256SUMS"},
    }


def image_sizes(raw: Path, zst: Path, root: RootFilesystem) -> dict[str, int]:
    return {
        "raw_bytes": raw.stat().st_size,
        "raw_allocated_bytes": raw.stat().st_blocks * 512,
        "root_used_bytes": root.used_bytes,
        "zst_bytes": zst.stat().st_size,
    }


def build(name: str, force: bool) -> Path:
    """The stages in order, each announced. After the two cached ones the whole build is skipped
    when its inputs are unchanged. The root filesystem, the boot files and the manifest are
    stages of their own so that an update bundle (issue 14) can take them as they are."""
    target = TARGETS[name]
    checkout = Checkout.read()
    (OUT / name).mkdir(parents=True, exist_ok=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    step = Step(11)

    step(f"Debian {SUITE} {target.arch} base (mmdebstrap)")
    base = base_tarball(target, checkout.epoch)
    step(f"wheels for {target.machine}, Python {PYTHON}")
    wheel_dir = wheels(target)
    inputs = inputs_digest(name, base, wheel_dir, checkout.epoch)
    if not force and up_to_date(name, inputs):
        raw = raw_image(name)
        print(f"==> up to date (inputs {inputs}): {raw.relative_to(ROOT)}", file=sys.stderr)
        return raw
    with scratch() as work:
        b = Build(name=name, target=target, checkout=checkout, ids=partition_ids(name), work=work)
        cmdline = kernel_cmdline(target, b.ids)
        step("root tree: base, appliance venv, overlay")
        app = app_wheel(work)
        tree = root_tree(b, base, wheel_dir, app)
        step("data tree: the appliance's home, the router's phrase cache")
        data = data_tree(b, tree)
        step("ESP: systemd-boot, slot A's kernel and initrd")
        boot = take_boot_files(b, tree)
        esp = esp_image(b, boot, cmdline)
        step("root filesystem: root-a ext4")
        root = root_filesystem(b, tree)
        step("data filesystem: ext4")
        data_fs = data_filesystem(b, data)
        step("GPT disk image: ESP, root-A, root-B (empty), data")
        layout = partition_layout(target, root.mib)
        raw = gpt_disk(b, layout, {"esp": esp, "root-a": root.image, "data": data_fs})
        keep_for_bundles(b, root)
        step("compress (zstd)")
        zst = compress(raw)
        step("manifest")
        write_json(
            b.dest / "manifest.json", image_manifest(b, cmdline, layout, tree, wheel_dir, app)
        )
        step("done")
        sizes = image_sizes(raw, zst, root)
        write_json(b.dest / "sizes.json", sizes)
        (b.dest / "inputs").write_text(inputs)
        print(
            f"    {raw.relative_to(ROOT)}: {sizes['raw_bytes'] / 1e6:.0f} MB "
            f"({sizes['raw_allocated_bytes'] / 1e6:.0f} MB allocated), compressed "
            f"{sizes['zst_bytes'] / 1e6:.0f} MB",
            file=sys.stderr,
        )
        return raw


def _wheel_record_hash(wheel: Path) -> str:
    """The appliance wheel's content hash, from its RECORD (the zip's own timestamps vary)."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        return hashlib.sha256(z.read(record)).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(TARGETS), default="qemu-amd64")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args()
    t0 = time.monotonic()
    raw = build(args.target, args.force)
    print(f"==> {raw.relative_to(ROOT)} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
