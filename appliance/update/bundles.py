"""Checking an update bundle before anything is written: who signed it, what it is for, whether
it is newer, and whether its contents are what was signed.

RAUC checks the signature against the image's keyring (``rauc info``). A verity bundle's
payload is otherwise only checked block by block while it is installed, so a bundle damaged
after signing would fail half way through the write; here each image in it is read through
once (``unsquashfs -cat``, streamed, nothing written) and its SHA-256 compared with the signed
manifest's, so a damaged bundle is refused before the slot is touched.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import msgspec
from packaging.version import InvalidVersion, Version

from appliance.errors import ApplianceError

KEYRING = Path("/etc/rauc/keyring.pem")
_CHUNK = 1 << 20


class BundleRefused(ApplianceError):
    """The bundle must not be installed; the message says why, in words."""


class Image(msgspec.Struct, frozen=True):
    slot_class: str
    filename: str
    checksum: str
    size: int


class BundleInfo(msgspec.Struct, frozen=True):
    compatible: str
    version: str
    images: list[Image]


class _RaucImage(msgspec.Struct):
    filename: str
    checksum: str
    size: int


class _RaucInfo(msgspec.Struct):
    compatible: str
    version: str
    images: list[dict[str, _RaucImage]]


def inspect(bundle: Path, keyring: Path = KEYRING) -> BundleInfo:
    """The signed manifest of ``bundle``, if its signature checks out against ``keyring``."""
    if not bundle.is_file():
        raise BundleRefused(f"{bundle}: no such file")
    done = subprocess.run(
        ["rauc", "info", "--output-format=json", f"--keyring={keyring}", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        why = _last_line(done.stderr) or f"rauc info exited {done.returncode}"
        raise BundleRefused(f"{bundle.name}: not signed by this appliance's update key: {why}")
    try:
        raw = msgspec.json.decode(json_part(done.stdout), type=_RaucInfo)
    except msgspec.DecodeError as err:
        raise BundleRefused(f"{bundle.name}: unreadable manifest: {err}") from err
    images = [
        Image(slot_class=cls, filename=i.filename, checksum=i.checksum, size=i.size)
        for entry in raw.images
        for cls, i in entry.items()
    ]
    return BundleInfo(compatible=raw.compatible, version=raw.version, images=images)


def check_target(
    info: BundleInfo,
    *,
    compatible: str,
    current: str,
    allow_downgrade: bool,
) -> None:
    """Refuse a bundle for another board or architecture, and one that is not newer than
    what runs (the same version, or older without ``allow_downgrade``)."""
    if info.compatible != compatible:
        raise BundleRefused(
            f"this bundle is for {info.compatible!r}; this appliance is {compatible!r}"
        )
    new, now = parse_version(info.version), parse_version(current)
    if new == now:
        raise BundleRefused(f"version {info.version} is already installed")
    if new < now and not allow_downgrade:
        raise BundleRefused(
            f"version {info.version} is older than the running {current}: a downgrade needs "
            "--allow-downgrade"
        )


def check_payload(
    bundle: Path, info: BundleInfo, progress: Callable[[int, int], None] | None = None
) -> None:
    """Read every image out of the bundle and compare it with the signed checksum."""
    total = sum(image.size for image in info.images)
    seen = 0
    for image in info.images:
        digest = hashlib.sha256()
        size = 0
        with subprocess.Popen(
            ["unsquashfs", "-cat", str(bundle), image.filename],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            assert proc.stdout is not None
            assert proc.stderr is not None
            while chunk := proc.stdout.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                seen += len(chunk)
                if progress is not None:
                    progress(seen, total)
            errors = proc.stderr.read().decode(errors="replace")
        if proc.returncode != 0 or size != image.size or digest.hexdigest() != image.checksum:
            why = _last_line(errors) or "its contents do not match the signed checksum"
            raise BundleRefused(f"{bundle.name}: {image.filename} is damaged: {why}")


def written_intact(
    device: Path, image: Image, progress: Callable[[int, int], None] | None = None
) -> bool:
    """Whether the first ``image.size`` bytes of ``device`` (the slot just written) read back
    as the signed checksum: what the storage kept, not what was sent to it."""
    digest = hashlib.sha256()
    left = image.size
    with device.open("rb", buffering=0) as slot:
        while left > 0:
            chunk = slot.read(min(_CHUNK, left))
            if not chunk:
                return False  # the slot is smaller than the image
            digest.update(chunk)
            left -= len(chunk)
            if progress is not None:
                progress(image.size - left, image.size)
    return digest.hexdigest() == image.checksum


def parse_version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion as err:
        raise BundleRefused(f"not a version: {text!r}") from err


def json_part(stdout: str) -> str:
    """rauc prints its log lines on stdout too; the JSON is the line that starts with ``{``."""
    return next((line for line in stdout.splitlines() if line.startswith("{")), stdout)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
