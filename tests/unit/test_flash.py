"""qey flash: an image written to a file arrives whole and verified, with progress; every
refusal (mounted, the host's root disk, too small, not confirmed, a bad image) writes nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.flash import (
    CHUNK,
    FlashRefused,
    LinuxBlockDevices,
    TargetInfo,
    VerifyFailed,
    flash,
)

pytestmark = pytest.mark.unit

OLD = b"precious data\n" * 1000


class FakeDevices:
    """The target file, seen as the host would see a block device in this state."""

    def __init__(self, **info: object) -> None:
        self.info = info

    def describe(self, target: Path) -> TargetInfo:
        fields: dict[str, object] = {"capacity": 1 << 40, **self.info}
        return TargetInfo(path=target, block_device=True, **fields)  # type: ignore[arg-type]


def yes(info: TargetInfo, size: int) -> bool:
    return True


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """An image with data, a long run of zeros (a hole in a file target), and an odd tail."""
    path = tmp_path / "qey.img"
    data = os.urandom(CHUNK + 12345) + bytes(3 * CHUNK) + os.urandom(777)
    path.write_bytes(data)
    return path


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "disk.bin"
    path.write_bytes(OLD)
    return path


def test_an_image_is_written_to_a_file_and_verified_with_progress(
    image: Path, tmp_path: Path
) -> None:
    target = tmp_path / "new-disk.bin"
    seen: list[tuple[str, int, int]] = []
    sha = flash(image, target, confirm=yes, progress=lambda *p: seen.append(p))
    assert target.read_bytes() == image.read_bytes()
    assert sha == hashlib.sha256(image.read_bytes()).hexdigest()
    size = image.stat().st_size
    for phase in ("write", "verify"):
        done = [d for p, d, t in seen if p == phase and t == size]
        assert done[0] == 0 and done[-1] == size and done == sorted(done), phase
    assert target.stat().st_blocks * 512 < size  # the zeros stayed a hole


def test_an_existing_larger_file_is_replaced_exactly(image: Path, tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    target.write_bytes(b"x" * (image.stat().st_size + 5000))
    flash(image, target, confirm=yes)
    assert target.read_bytes() == image.read_bytes()


def test_confirmation_is_asked_after_the_checks_and_no_means_nothing_written(
    image: Path, target: Path
) -> None:
    asked: list[tuple[TargetInfo, int]] = []

    def no(info: TargetInfo, size: int) -> bool:
        asked.append((info, size))
        return False

    with pytest.raises(FlashRefused, match="not confirmed"):
        flash(image, target, confirm=no)
    assert asked[0][0].path == target and asked[0][1] == image.stat().st_size
    assert target.read_bytes() == OLD


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"mounted": ("/dev/sdb1 on /media/usb",)}, "in use .*/media/usb.*unmount"),
        ({"mounted": ("/dev/sdb2 as swap",)}, "in use"),
        ({"holds_root": True}, "root filesystem"),
        ({"capacity": 1000}, "too small: 1000 bytes"),
    ],
)
def test_a_target_in_that_state_is_refused_before_anything_is_written(
    image: Path, target: Path, state: dict[str, object], message: str
) -> None:
    asked: list[TargetInfo] = []
    with pytest.raises(FlashRefused, match=message):
        flash(image, target, FakeDevices(**state), confirm=lambda i, s: bool(asked.append(i)))
    assert asked == [] and target.read_bytes() == OLD


def test_a_bad_image_is_refused(image: Path, target: Path, tmp_path: Path) -> None:
    with pytest.raises(FlashRefused, match="no such image"):
        flash(tmp_path / "missing.img", target, confirm=yes)
    with pytest.raises(FlashRefused, match="the image itself"):
        flash(image, image, confirm=yes)
    sums = image.with_name(image.name + ".sha256")
    sums.write_text(f"{'0' * 64}  {image.name}\n")
    with pytest.raises(FlashRefused, match="does not match"):
        flash(image, target, confirm=yes)
    assert target.read_bytes() == OLD
    sums.write_text(f"{hashlib.sha256(image.read_bytes()).hexdigest()}  {image.name}\n")
    flash(image, target, confirm=yes)
    assert target.read_bytes() == image.read_bytes()


def test_a_target_that_loses_writes_fails_verification(image: Path) -> None:
    with pytest.raises(VerifyFailed, match="read back sha256"):
        flash(image, Path("/dev/null"), FakeDevices(), confirm=yes)


def test_neither_a_file_nor_a_block_device_is_refused(image: Path) -> None:
    with pytest.raises(FlashRefused, match="neither a block device"):
        flash(image, Path("/dev/null"), confirm=yes)


def fake_host(tmp_path: Path) -> LinuxBlockDevices:
    """sda holds / (sda1); sdb has sdb1 under a dm device mounted on /media/my disk and sdb2
    as swap; sdc is idle. Laid out as the kernel lays out /sys and /proc."""
    sys_, proc = tmp_path / "sys", tmp_path / "proc"
    devices = sys_ / "devices"

    def disk(name: str, sectors: int, model: str) -> Path:
        d = devices / "pci0" / "block" / name
        (d / "device").mkdir(parents=True)
        (d / "holders").mkdir()
        (d / "size").write_text(f"{sectors}\n")
        (d / "device" / "model").write_text(f"{model}  \n")
        return d

    def part(d: Path, name: str) -> Path:
        p = d / name
        (p / "holders").mkdir(parents=True)
        (p / "partition").write_text("1\n")
        (p / "size").write_text("1000\n")
        return p

    sda, sdb, sdc = disk("sda", 2000, "HOSTDISK"), disk("sdb", 4000, "USB"), disk("sdc", 8, "X")
    sda1, sdb1, sdb2 = part(sda, "sda1"), part(sdb, "sdb1"), part(sdb, "sdb2")
    dm = devices / "virtual" / "block" / "dm-0"
    (dm / "slaves").mkdir(parents=True)
    (dm / "size").write_text("900\n")
    (sdb1 / "holders" / "dm-0").symlink_to(dm)
    (dm / "slaves" / "sdb1").symlink_to(sdb1)
    (sys_ / "dev" / "block").mkdir(parents=True)
    for numbers, node in {
        "8:0": sda,
        "8:1": sda1,
        "8:16": sdb,
        "8:17": sdb1,
        "8:18": sdb2,
        "8:32": sdc,
        "253:0": dm,
    }.items():
        (sys_ / "dev" / "block" / numbers).symlink_to(node)
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(
        "21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "22 21 0:5 / /proc rw - proc proc rw\n"
        "40 21 253:0 / /media/my\\040disk rw shared:9 - ext4 /dev/mapper/usb rw\n"
    )
    (proc / "swaps").write_text(
        "Filename\tType\tSize\tUsed\tPriority\n/dev/sdb2  partition\t500\t0\t-2\n"
    )
    return LinuxBlockDevices(proc=proc, sys=sys_)


def test_the_host_view_finds_root_mounts_swap_and_sizes(tmp_path: Path) -> None:
    host = fake_host(tmp_path)
    root = host.describe_device(Path("/dev/sda"), 8, 0)
    assert root.holds_root and root.mounted == ("/dev/sda1 on /",)
    assert host.describe_device(Path("/dev/sda1"), 8, 1).holds_root
    used = host.describe_device(Path("/dev/sdb"), 8, 16)
    assert not used.holds_root and used.capacity == 4000 * 512
    assert set(used.mounted) == {"/dev/mapper/usb on /media/my disk", "/dev/sdb2 as swap"}
    idle = host.describe_device(Path("/dev/sdc"), 8, 32)
    assert (idle.mounted, idle.holds_root, idle.capacity) == ((), False, 8 * 512)
    assert idle.description.startswith("X,")


def test_the_host_view_of_a_plain_file(target: Path, tmp_path: Path) -> None:
    host = LinuxBlockDevices()
    info = host.describe(target)
    assert (info.block_device, info.capacity, info.mounted) == (False, None, ())
    assert not host.describe(tmp_path / "not-yet").block_device


def qey(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "flash", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_the_command_needs_yes_without_a_terminal_and_then_flashes(
    image: Path, target: Path
) -> None:
    refused = qey(str(image), str(target))
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert target.read_bytes() == OLD
    done = qey(str(image), str(target), "--yes")
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stdout and "verify 100%" in done.stderr
    assert target.read_bytes() == image.read_bytes()


def never(info: TargetInfo, size: int) -> bool:
    raise AssertionError(f"asked to confirm writing {info.path}, which should have been refused")


def test_a_kernel_file_is_refused(image: Path) -> None:
    """``/proc/version`` was once accepted and written (as root: an EIO traceback)."""
    with pytest.raises(FlashRefused, match="/proc/version is on proc, a kernel file system"):
        flash(image, Path("/proc/version"), confirm=never)


def host_view(tmp_path: Path, target: Path, *, filesystem: str = "ext4") -> LinuxBlockDevices:
    """A /proc and /sys of our own: ``target``'s file system is ``filesystem``, no loop
    device is attached and no process has anything open."""
    proc, sys_ = tmp_path / "fake-proc", tmp_path / "fake-sys"
    (proc / "self").mkdir(parents=True)
    (sys_ / "block").mkdir(parents=True)
    dev = (target if target.exists() else target.parent).stat().st_dev
    (proc / "self" / "mountinfo").write_text(
        f"21 1 {os.major(dev)}:{os.minor(dev)} / {tmp_path} rw - {filesystem} none rw\n"
    )
    return LinuxBlockDevices(proc=proc, sys=sys_)


@pytest.mark.parametrize(
    "filesystem", ["proc", "sysfs", "devtmpfs", "cgroup2", "debugfs", "securityfs", "tracefs"]
)
def test_a_file_on_a_kernel_file_system_is_refused(
    image: Path, target: Path, tmp_path: Path, filesystem: str
) -> None:
    host = host_view(tmp_path, target, filesystem=filesystem)
    with pytest.raises(FlashRefused, match=f"on {filesystem}, a kernel file system"):
        flash(image, target, host, confirm=never)
    assert target.read_bytes() == OLD


@pytest.mark.parametrize("filesystem", ["ext4", "tmpfs", "xfs"])
def test_a_file_on_a_real_or_memory_file_system_is_written(
    image: Path, target: Path, tmp_path: Path, filesystem: str
) -> None:
    flash(image, target, host_view(tmp_path, target, filesystem=filesystem), confirm=yes)
    assert target.read_bytes() == image.read_bytes()


def test_a_hard_link_to_the_image_is_the_image(image: Path, tmp_path: Path) -> None:
    """Once it passed (another path) and the image was truncated under its own copy."""
    link = tmp_path / "another-name.img"
    os.link(image, link)
    before = image.read_bytes()
    with pytest.raises(FlashRefused, match="is the image itself"):
        flash(image, link, host_view(tmp_path, link), confirm=never)
    assert image.read_bytes() == before


def test_the_backing_file_of_a_loop_device_is_refused(
    image: Path, target: Path, tmp_path: Path
) -> None:
    host = host_view(tmp_path, target)
    loop = host.sys / "block" / "loop3" / "loop"
    loop.mkdir(parents=True)
    (loop / "backing_file").write_text(f"{target}\n")
    (host.sys / "block" / "loop4" / "loop").mkdir(parents=True)  # detached: no backing file
    with pytest.raises(FlashRefused, match=r"in use .*backing file of /dev/loop3"):
        flash(image, target, host, confirm=never)
    assert target.read_bytes() == OLD


def test_a_file_another_process_has_open_is_refused(image: Path, target: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; f = open(sys.argv[1], 'rb'); print(1, flush=True); sys.stdin.read()",
            str(target),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "1\n"
        with pytest.raises(FlashRefused, match=f"in use .*open by pid {holder.pid} "):
            flash(image, target, confirm=never)
    finally:
        holder.communicate(timeout=10)
    assert target.read_bytes() == OLD
    flash(image, target, confirm=yes)  # closed now: it may be written
    assert target.read_bytes() == image.read_bytes()


def test_a_missing_directory_or_a_dangling_link_is_a_clear_refusal(
    image: Path, tmp_path: Path
) -> None:
    with pytest.raises(FlashRefused, match="no such directory"):
        flash(image, tmp_path / "no" / "such" / "disk.img", confirm=never)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "elsewhere" / "disk.img")
    with pytest.raises(
        FlashRefused, match=r"a link to .*elsewhere/disk\.img, which does not exist"
    ):
        flash(image, dangling, confirm=never)


def test_the_command_refuses_in_one_line_without_a_traceback(image: Path, tmp_path: Path) -> None:
    for target in ("/proc/version", str(tmp_path / "no" / "dir" / "disk.img")):
        refused = qey(str(image), target, "--yes")
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr.startswith("qey: ") and refused.stderr.count("\n") == 1, (
            refused.stderr
        )
