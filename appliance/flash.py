"""Writing an OS image to a disk (``qey flash IMAGE TARGET``) and proving it arrived.

The image is copied in large chunks while its sha256 is computed; then the target is read back
and hashed again. Before anything is written the target is checked: a mounted device (or one
whose partition or device-mapper child is mounted or swapped on), the disk the host's root is
on, or a device smaller than the image is refused, and nothing is written without a yes.

A file target is checked too: the image itself under another name (a hard link: compared by
device and inode, not by path), a file on a kernel file system (``/proc/version`` was once
accepted and written as root), the backing file of a loop device, and a file another process
has open are refused; a missing directory or a dangling link is a one-line refusal, not a
traceback. A block device is opened with O_EXCL, so one the kernel holds is refused as well.

What the host looks like comes from a ``BlockDevices`` (``LinuxBlockDevices`` reads /proc and
/sys, roots injectable; tests pass their own), so every refusal is tested on plain files.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from appliance.errors import ApplianceError

CHUNK = 4 * 1024 * 1024
MiB = 1024 * 1024

Progress = Callable[[str, int, int], None]  # phase ("write" or "verify"), done, total bytes


class FlashRefused(ApplianceError, ValueError):
    """The target may not be written (mounted, the host's own disk, too small, not
    confirmed); nothing was written."""


class VerifyFailed(ApplianceError):
    """What was read back from the target is not what was written."""


class FlashFailed(ApplianceError):
    """Writing or reading back the target failed part way (a disk error, pulled out)."""


KERNEL_FILESYSTEMS = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "sysfs",
        "tracefs",
    }
)
"""File systems whose files are the kernel's, not data: never an image's target. (tmpfs and
ramfs hold ordinary files, /dev/shm's too, and are fine.)"""


class TargetInfo(msgspec.Struct, frozen=True, kw_only=True):
    path: Path
    block_device: bool  # False: a regular file (it grows to fit; no disk checks apply)
    capacity: int | None = None  # bytes; None: unbounded (a file)
    mounted: tuple[str, ...] = ()  # what uses it: "/dev/sdb1 on /media/x", "open by pid 7"
    filesystem: str = ""  # a file's (or a new file's directory's) file system type; "" unknown
    holds_root: bool = False  # the host's root filesystem is on this disk
    description: str = ""  # model and size, for the confirmation prompt


class BlockDevices(Protocol):
    def describe(self, target: Path) -> TargetInfo: ...


class LinuxBlockDevices:
    """The host's view, from /proc/self/mountinfo, /proc/swaps and /sys (roots replaceable
    for tests)."""

    def __init__(self, proc: Path = Path("/proc"), sys: Path = Path("/sys")) -> None:
        self.proc = proc
        self.sys = sys

    def describe(self, target: Path) -> TargetInfo:
        try:
            st = target.stat()
        except FileNotFoundError:
            return self._describe_new(target)
        except OSError as err:
            raise FlashRefused(f"{target}: {err.strerror or err}") from None
        if stat.S_ISREG(st.st_mode):
            return TargetInfo(
                path=target,
                block_device=False,
                mounted=tuple(self._loops_on(st) + self._open_by(st)),
                filesystem=self._filesystem(st.st_dev),
                description=f"a file of {st.st_size} bytes",
            )
        if not stat.S_ISBLK(st.st_mode):
            raise FlashRefused(f"{target} is neither a block device nor a regular file")
        info = self.describe_device(target, os.major(st.st_rdev), os.minor(st.st_rdev))
        return msgspec.structs.replace(info, mounted=info.mounted + tuple(self._open_by(st)))

    def _describe_new(self, target: Path) -> TargetInfo:
        """A target that does not exist yet: a new file, if its directory is there."""
        if target.is_symlink():
            raise FlashRefused(f"{target} is a link to {os.readlink(target)}, which does not exist")
        parent = target.parent
        if not parent.is_dir():
            raise FlashRefused(f"{target}: no such directory {parent}")
        return TargetInfo(
            path=target,
            block_device=False,
            filesystem=self._filesystem(parent.stat().st_dev),
            description="a new file",
        )

    def _filesystem(self, dev: int) -> str:
        """The type of the file system on device ``dev`` (a file's ``st_dev``), from mountinfo."""
        numbers = f"{os.major(dev)}:{os.minor(dev)}"
        for line in _read(self.proc / "self" / "mountinfo").splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == numbers and "-" in fields:
                sep = fields.index("-")
                if len(fields) > sep + 1:
                    return fields[sep + 1]
        return ""

    def _loops_on(self, st: os.stat_result) -> list[str]:
        """The loop devices whose backing file this is (mounted or not, they write to it)."""
        used: list[str] = []
        for backing in sorted((self.sys / "block").glob("loop*/loop/backing_file")):
            path = _read(backing).removesuffix(" (deleted)")
            if path and _same_inode(Path(path), st):
                used.append(f"backing file of /dev/{backing.parent.parent.name}")
        return used

    def _open_by(self, st: os.stat_result) -> list[str]:
        """Processes (other than this one) with the file or device open: what they write
        would mix with the image. Only the processes this user may look into are seen."""
        used: list[str] = []
        me = str(os.getpid())
        try:
            pids = [p for p in self.proc.iterdir() if p.name.isdigit() and p.name != me]
        except OSError:
            return used
        for pid in pids:
            try:
                fds = list((pid / "fd").iterdir())
            except OSError:  # gone, or not ours to look into
                continue
            if any(_same_inode(fd, st) for fd in fds):
                used.append(f"open by pid {pid.name} ({_read(pid / 'comm') or '?'})")
        return used

    def describe_device(self, target: Path, major: int, minor: int) -> TargetInfo:
        """A block device by its numbers: size, model, what is mounted from it."""
        node = self._sys_node(major, minor)
        disk = node.parent if (node / "partition").exists() else node
        family = self._family(node)
        in_use = self._in_use(family)
        sectors = int((node / "size").read_text().strip() or 0)
        model = _read(disk / "device" / "model") or _read(disk / "device" / "name")
        capacity = sectors * 512
        return TargetInfo(
            path=target,
            block_device=True,
            capacity=capacity,
            mounted=tuple(in_use),
            holds_root=disk.name in self._root_disks(),
            description=f"{model or disk.name}, {capacity / 1e9:.1f} GB".strip(", "),
        )

    def _sys_node(self, major: int, minor: int) -> Path:
        return (self.sys / "dev" / "block" / f"{major}:{minor}").resolve()

    def _family(self, node: Path) -> set[str]:
        """The device, its partitions, and everything stacked on them (dm, md), by name."""
        names: set[str] = set()
        todo = [node, *(p for p in node.iterdir() if (p / "partition").exists())]
        while todo:
            n = todo.pop()
            if n.name in names:
                continue
            names.add(n.name)
            holders = n / "holders"
            if holders.is_dir():
                todo.extend(h.resolve() for h in holders.iterdir())
        return names

    def _in_use(self, names: set[str]) -> list[str]:
        used: list[str] = []
        mountinfo = self.proc / "self" / "mountinfo"
        for line in mountinfo.read_text().splitlines():
            fields = line.split()
            if len(fields) < 10 or "-" not in fields:
                continue
            sep = fields.index("-")
            major, minor = fields[2].split(":")
            source = fields[sep + 2]
            node = self._sys_node(int(major), int(minor))
            if node.name in names or Path(source).name in names:
                used.append(f"{source} on {_unescape(fields[4])}")
        swaps = self.proc / "swaps"
        if swaps.exists():
            for line in swaps.read_text().splitlines()[1:]:
                source = line.split()[0] if line.split() else ""
                if Path(source).name in names:
                    used.append(f"{source} as swap")
        return used

    def _root_disks(self) -> set[str]:
        """The whole disks under the filesystem mounted on / (through dm/md slaves)."""
        for line in (self.proc / "self" / "mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4 and fields[4] == "/":
                major, minor = fields[2].split(":")
                break
        else:
            return set()
        disks: set[str] = set()
        todo = [self._sys_node(int(major), int(minor))]
        while todo:
            n = todo.pop()
            if not n.exists():
                continue
            slaves = n / "slaves"
            below = list(slaves.iterdir()) if slaves.is_dir() else []
            if below:
                todo.extend(s.resolve() for s in below)
            else:
                disks.add(n.parent.name if (n / "partition").exists() else n.name)
        return disks


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _same_inode(path: Path, st: os.stat_result) -> bool:
    """``path`` (followed through links) is the file ``st`` describes: same device and inode."""
    try:
        other = path.stat()
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _unescape(field: str) -> str:
    """mountinfo writes a space as \\040."""
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def check(image: Path, target: Path, devices: BlockDevices) -> TargetInfo:
    """Every refusal that can be decided before writing; returns what the target is."""
    if not image.is_file():
        raise FlashRefused(f"{image}: no such image file")
    if _same_inode(target, image.stat()):  # by inode: a hard link or a symlink is the image too
        raise FlashRefused(f"{target} is the image itself")
    info = devices.describe(target)
    if not info.block_device and info.filesystem in KERNEL_FILESYSTEMS:
        raise FlashRefused(
            f"{target} is on {info.filesystem}, a kernel file system: not a disk, nor a file "
            "to hold an image"
        )
    if info.holds_root:
        raise FlashRefused(f"{target} holds this computer's root filesystem; refusing")
    if info.mounted:
        raise FlashRefused(
            f"{target} is in use ({'; '.join(info.mounted)}); unmount or close it first"
        )
    size = image.stat().st_size
    if info.capacity is not None and info.capacity < size:
        raise FlashRefused(
            f"{target} is too small: {info.capacity} bytes for an image of {size} bytes"
        )
    expected = published_sha256(image)
    if expected is not None and expected != file_sha256(image):
        raise FlashRefused(f"{image} does not match its {image.name}.sha256; download it again")
    return info


def _open_target(target: Path, info: TargetInfo) -> int:
    """The target opened for writing; a block device exclusively (O_EXCL: EBUSY if the kernel
    holds it: mounted, swap, RAID, device-mapper), a file created 0644 or truncated."""
    if info.block_device:
        flags = os.O_WRONLY | os.O_CLOEXEC | os.O_EXCL
    else:
        flags = os.O_WRONLY | os.O_CLOEXEC | os.O_CREAT | os.O_TRUNC
    try:
        return os.open(target, flags, 0o644)
    except OSError as err:
        if err.errno == errno.EBUSY:
            raise FlashRefused(
                f"{target} is in use (the kernel holds it); nothing written"
            ) from None
        raise FlashRefused(
            f"cannot open {target}: {err.strerror or err}; nothing written"
        ) from None


def published_sha256(image: Path) -> str | None:
    """The hash in ``IMAGE.sha256`` beside the image (sha256sum's format), if there is one."""
    sums = image.with_name(image.name + ".sha256")
    if not sums.exists():
        return None
    return sums.read_text().split()[0].lower()


def file_sha256(path: Path, limit: int | None = None) -> str:
    digest = hashlib.sha256()
    for chunk in _chunks(path, limit):
        digest.update(chunk)
    return digest.hexdigest()


def _chunks(
    path: Path, limit: int | None = None, progress: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    done = 0
    with path.open("rb", buffering=0) as f:
        while limit is None or done < limit:
            want = CHUNK if limit is None else min(CHUNK, limit - done)
            chunk = f.read(want)
            if not chunk:
                break
            done += len(chunk)
            if progress is not None:
                progress(done)
            yield chunk


def flash(
    image: Path,
    target: Path,
    devices: BlockDevices | None = None,
    *,
    confirm: Callable[[TargetInfo, int], bool],
    progress: Progress | None = None,
) -> str:
    """Write ``image`` to ``target``, read it back and compare; returns the sha256.

    ``confirm(info, image_size)`` is asked after every check has passed and before the first
    byte is written. A regular file target is replaced (and left sparse where the image is
    zeros); a block device is written in full."""
    info = check(image, target, devices or LinuxBlockDevices())
    size = image.stat().st_size
    if not confirm(info, size):
        raise FlashRefused("not confirmed; nothing written")
    report = progress or (lambda phase, done, total: None)
    zeros = bytes(CHUNK)
    digest = hashlib.sha256()
    fd = _open_target(target, info)
    written = 0
    try:
        report("write", 0, size)
        for chunk in _chunks(image):
            digest.update(chunk)
            if not info.block_device and chunk == zeros[: len(chunk)]:
                os.lseek(fd, len(chunk), os.SEEK_CUR)  # a hole: the file stays sparse
            else:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            written += len(chunk)
            report("write", written, size)
        if not info.block_device:
            os.ftruncate(fd, size)
        try:
            os.fsync(fd)
        except OSError as err:  # EINVAL: nothing to sync (a character device)
            if err.errno != errno.EINVAL:
                raise
        if hasattr(os, "posix_fadvise"):  # read back from the disk, not the page cache
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as err:
        raise FlashFailed(
            f"writing {target} failed after {written} bytes: {err.strerror or err}"
        ) from err
    finally:
        os.close(fd)
    expected = digest.hexdigest()
    report("verify", 0, size)
    back = hashlib.sha256()
    try:
        for chunk in _chunks(target, size, lambda done: report("verify", done, size)):
            back.update(chunk)
    except OSError as err:
        raise FlashFailed(f"reading {target} back failed: {err.strerror or err}") from err
    got = back.hexdigest()
    if got != expected:
        raise VerifyFailed(f"{target}: read back sha256 {got}, wrote {expected}")
    return expected
