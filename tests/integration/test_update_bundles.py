"""Update bundles, made the way ``./build.sh bundle`` makes them (image/bundle.py, real RAUC,
openssl, squashfs) and checked the way ``qey update`` checks them before writing anything:
signed by this appliance's key, for this board, newer, and its contents as signed."""

from __future__ import annotations

import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.update import bundles
from appliance.update.bundles import BundleRefused

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BOARD = "qey-qemu-amd64"
KERNEL = random.Random(7).randbytes(300_000)  # incompressible: most of the bundle's bytes


def root_image(tmp: Path) -> Path:
    """A small root filesystem image with a kernel and initrd where Debian puts them."""
    tree = tmp / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "boot" / "vmlinuz-6.1.0").write_bytes(KERNEL)
    (tree / "boot" / "initrd.img-6.1.0").write_bytes(bytes(range(256)) * 1000)
    (tree / "boot" / "vmlinuz").symlink_to("vmlinuz-6.1.0")
    (tree / "boot" / "initrd.img").symlink_to("initrd.img-6.1.0")
    image = tmp / "root.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-d", str(tree), str(image), "4M"], check=True)
    return image


def bundle(tmp: Path, keys: Path, *, version: str, compatible: str = BOARD) -> Path:
    out = tmp / f"qey-{compatible}-{version}.raucb"
    work = tmp / out.stem
    work.mkdir()
    subprocess.run(
        [
            sys.executable, str(ROOT / "image" / "bundle.py"),
            "--root-image", str(root_image(work)), "--compatible", compatible,
            "--version", version, "--out", str(out), "--keys", str(keys),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bundles")
    ours, theirs = tmp / "keys", tmp / "other-keys"
    return {
        "keyring": ours / "cert.pem",
        "keys": ours,
        "good": bundle(tmp, ours, version="0.1.0+200"),
        "older": bundle(tmp, ours, version="0.1.0+50"),
        "other board": bundle(tmp, ours, version="0.1.0+300", compatible="qey-qey0"),
        "other key": bundle(tmp, theirs, version="0.1.0+400"),
    }


def test_a_bundle_signed_by_our_key_for_this_board_and_newer_passes(made: dict[str, Path]) -> None:
    info = bundles.inspect(made["good"], made["keyring"])
    assert (info.compatible, info.version) == (BOARD, "0.1.0+200")
    assert [(i.slot_class, i.filename) for i in info.images] == [("rootfs", "root.ext4")]
    bundles.check_target(info, compatible=BOARD, current="0.1.0+100", allow_downgrade=False)
    seen: list[tuple[int, int]] = []
    bundles.check_payload(made["good"], info, progress=lambda d, t: seen.append((d, t)))
    assert seen
    assert seen[-1][0] == seen[-1][1] == info.images[0].size


def test_the_update_key_is_the_owners_alone(made: dict[str, Path]) -> None:
    key = made["keys"] / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(made["keys"].stat().st_mode) == 0o700


def test_a_bundle_signed_by_another_key_is_refused(made: dict[str, Path]) -> None:
    with pytest.raises(BundleRefused, match="not signed by this appliance's update key"):
        bundles.inspect(made["other key"], made["keyring"])


def test_a_bundle_damaged_after_signing_is_refused_before_anything_is_written(
    made: dict[str, Path], tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.raucb"
    data = bytearray(made["good"].read_bytes())
    data[len(data) // 3] ^= 0xFF  # in the (mostly random) root image: the signed manifest
    # and its verity root hash still verify; the content does not
    damaged.write_bytes(bytes(data))
    info = bundles.inspect(damaged, made["keyring"])
    with pytest.raises(BundleRefused, match=r"root\.ext4 is damaged"):
        bundles.check_payload(damaged, info)
    data[-100] ^= 0xFF  # inside the signature: refused at once
    damaged.write_bytes(bytes(data))
    with pytest.raises(BundleRefused, match="not signed"):
        bundles.inspect(damaged, made["keyring"])


def test_a_bundle_for_another_board_is_refused(made: dict[str, Path]) -> None:
    info = bundles.inspect(made["other board"], made["keyring"])
    with pytest.raises(BundleRefused, match="for 'qey-qey0'; this appliance is 'qey-qemu-amd64'"):
        bundles.check_target(info, compatible=BOARD, current="0.1.0+100", allow_downgrade=False)


def test_a_downgrade_is_refused_unless_allowed_and_the_same_version_always(
    made: dict[str, Path],
) -> None:
    info = bundles.inspect(made["older"], made["keyring"])
    with pytest.raises(BundleRefused, match="needs --allow-downgrade"):
        bundles.check_target(info, compatible=BOARD, current="0.1.0+100", allow_downgrade=False)
    bundles.check_target(info, compatible=BOARD, current="0.1.0+100", allow_downgrade=True)
    same = bundles.inspect(made["good"], made["keyring"])
    with pytest.raises(BundleRefused, match="already installed"):
        bundles.check_target(same, compatible=BOARD, current="0.1.0+200", allow_downgrade=True)


def test_a_missing_file_or_garbage_is_refused_in_words(
    made: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(BundleRefused, match="no such file"):
        bundles.inspect(tmp_path / "nothing.raucb", made["keyring"])
    garbage = tmp_path / "garbage.raucb"
    garbage.write_bytes(b"not a bundle" * 1000)
    with pytest.raises(BundleRefused, match="not signed"):
        bundles.inspect(garbage, made["keyring"])


def test_a_key_directory_with_half_a_key_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "cert.pem").write_text("x")
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "image" / "bundle.py"), "--root-image",
            str(root_image(tmp_path)), "--compatible", BOARD, "--version", "1",
            "--out", str(tmp_path / "x.raucb"), "--keys", str(keys),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert "only one of key.pem and cert.pem" in done.stderr
