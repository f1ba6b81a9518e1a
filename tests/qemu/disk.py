"""Editing a copy of the image before it boots, without mounting anything: the ESP's files with
mtools, an ext4 partition's files with debugfs, a partition's bytes at its offset. How the
update and watchdog tests set up what a device would have after a given event (an install
that wrote a slot, a record on the data partition, a kernel command line)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import qemu  # image/qemu.py, on the path by tests/qemu/conftest.py

from appliance.update.backend import options_for
from appliance.update.entries import ENTRIES

MiB = 1 << 20
MTOOLS = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
FIRST_ENTRY = "qey-000001-a.conf"


def mtools(*args: str) -> str:
    done = subprocess.run(args, check=True, capture_output=True, text=True, env=MTOOLS)
    return done.stdout


class Disk:
    """A raw copy of an image (sparse) and what its manifest says about it."""

    def __init__(self, image: Path, path: Path) -> None:
        subprocess.run(["cp", "--sparse=always", str(image), str(path)], check=True)
        self.path = path
        self.built = image.parent  # build/image/T: root.ext4, version, compatible
        self.manifest = json.loads((image.parent / "manifest.json").read_text())
        self.offsets: dict[str, int] = {}
        start = 1  # MiB: the partitions are laid one after the other from here
        for part in self.manifest["partitions"]:
            self.offsets[part["name"]] = start * MiB
            start += part["mib"]

    @property
    def esp(self) -> str:
        return f"{self.path}@@{self.offsets['esp']}"

    def uuid(self, partition: str) -> str:
        return str(next(p["uuid"] for p in self.manifest["partitions"] if p["name"] == partition))

    def write_partition(self, partition: str, content: Path) -> None:
        """``content`` (a filesystem image) at the partition's offset, in place."""
        subprocess.run(
            ["dd", f"if={content}", f"of={self.path}", "bs=1M", "conv=notrunc,sparse",
             f"seek={self.offsets[partition] // MiB}", "status=none"],
            check=True,
        )  # fmt: skip

    def put_file(self, partition: str, local: Path, path: str) -> None:
        """A file into an ext4 partition (replacing one there), owned by root as debugfs
        writes it: what root's update tools leave on the data partition."""
        fs = f"{self.path}?offset={self.offsets[partition]}"
        for request in (f"rm {path}", f"write {local} {path}"):
            subprocess.run(["debugfs", "-w", "-R", request, fs], check=True, capture_output=True)

    def put_private_file(self, partition: str, local: Path, path: str, user: str) -> None:
        """A file into an ext4 partition as ``user`` of the image made it there (mode 0600):
        what the appliance leaves in its data directory, its key for one."""
        self.put_file(partition, local, path)
        uid, gid = self.user_ids(user)
        fs = f"{self.path}?offset={self.offsets[partition]}"
        for field, value in (("uid", str(uid)), ("gid", str(gid)), ("mode", "0100600")):
            request = f"set_inode_field {path} {field} {value}"  # debugfs reads 0... as octal
            subprocess.run(["debugfs", "-w", "-R", request, fs], check=True, capture_output=True)

    def user_ids(self, user: str) -> tuple[int, int]:
        """``user``'s uid and gid in the image's root filesystem."""
        root = self.built / "root.ext4"
        passwd = subprocess.run(
            ["debugfs", "-R", "cat /etc/passwd", str(root)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for line in passwd.splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return int(fields[2]), int(fields[3])
        raise LookupError(f"no user {user} in {root}")

    def link(self, partition: str, path: str, target: str) -> None:
        """A symbolic link in an ext4 partition (a unit enabled into a target's wants)."""
        fs = f"{self.path}?offset={self.offsets[partition]}"
        request = f"symlink {path} {target}"
        subprocess.run(["debugfs", "-w", "-R", request, fs], check=True, capture_output=True)

    def new_slot_b(self, tmp: Path, *, extra_options: str = "", tries: int = 3) -> str:
        """Slot B set up the way the boot loader backend sets up a new slot: slot A's kernel
        and initrd in the ESP's /qey/b/, a newer entry with ``tries``, its command line
        pointed at root-b (plus ``extra_options``). Returns the entry's name."""
        mtools("mmd", "-i", self.esp, "::/qey/b")
        for name in ("vmlinuz", "initrd.img"):
            mtools("mcopy", "-i", self.esp, f"::/qey/a/{name}", str(tmp / name))
            mtools("mcopy", "-i", self.esp, str(tmp / name), f"::/qey/b/{name}")
            (tmp / name).unlink()
        options = options_for("b", self.manifest["kernel_cmdline"], self.uuid("root-b"))
        entry = f"qey-000002-b+{tries}.conf"
        body = tmp / entry
        body.write_text(
            "title qEY-0 (slot B)\nlinux /qey/b/vmlinuz\ninitrd /qey/b/initrd.img\n"
            f"options {options} {extra_options}".rstrip()
            + "\n"
        )
        mtools("mcopy", "-i", self.esp, str(body), f"::/{ENTRIES}/{entry}")
        return entry

    def edit_first_entry(self, tmp: Path, drop: tuple[str, ...], add: str) -> None:
        """Slot A's kernel command line without the words starting with ``drop``, plus
        ``add``."""
        local = tmp / FIRST_ENTRY
        mtools("mcopy", "-i", self.esp, f"::/{ENTRIES}/{FIRST_ENTRY}", str(local))
        lines = []
        for line in local.read_text().splitlines():
            if line.startswith("options "):
                words = [w for w in line.split()[1:] if not w.startswith(drop)]
                line = " ".join(["options", *words, add])
            lines.append(line)
        local.write_text("\n".join(lines) + "\n")
        mtools("mcopy", "-o", "-i", self.esp, str(local), f"::/{ENTRIES}/{FIRST_ENTRY}")


def esp_entries(disk: Path, tmp: Path) -> list[str]:
    """The boot entries on a disk's ESP after it ran (a qcow2 overlay: flattened first)."""
    flat = tmp / "after.img"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(flat)], check=True)
    listing = mtools("mdir", "-b", "-i", f"{flat}@@1M", f"::/{ENTRIES}")
    flat.unlink()
    return sorted(Path(line.strip()).name for line in listing.splitlines() if line.strip())


def overlay(target: str, disk: Path, state: Path) -> None:
    """The guest's disk: a 4 GB qcow2 over ``disk`` (so the data partition can grow), and
    fresh firmware variables."""
    qemu.prepare(target, state, disk_size="4G", fresh=True, image=disk)
