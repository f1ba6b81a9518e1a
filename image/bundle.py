"""Make a signed update bundle: ``./build.sh bundle --target qemu-amd64``.

A bundle is RAUC's (verity format): the target's root filesystem image, with its kernel and
initrd inside it in /boot, and a manifest naming what it is for (``compatible``: one board)
and its version, signed with the update key. The device checks the signature against the
certificate baked into its image at build time (/etc/rauc/keyring.pem), so only bundles
signed by the same key install.

The key never enters the repository: the first build makes one under
~/.config/qey/update-keys/ (or $QEY_UPDATE_KEYS), key readable by its owner alone; give your
own by putting key.pem and cert.pem there. Losing it means devices in the field take no more
updates, so keep a copy somewhere safe.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = Path(os.environ.get("QEY_UPDATE_KEYS") or Path.home() / ".config" / "qey" / "update-keys")
SUBJECT = "/O=qEY-0/CN=qEY-0 update signing"


def signing_key(keys: Path = KEYS) -> tuple[Path, Path]:
    """The update key and its certificate, made (EC P-256, self-signed) if there are none."""
    key, cert = keys / "key.pem", keys / "cert.pem"
    if key.exists() and cert.exists():
        return key, cert
    if key.exists() or cert.exists():
        raise SystemExit(f"{keys}: has only one of key.pem and cert.pem; give both or neither")
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    old = os.umask(0o077)
    try:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(key), "-out", str(cert),
                "-days", "36500", "-subj", SUBJECT,
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    finally:
        os.umask(old)
    cert.chmod(0o644)
    print(f"==> made an update signing key in {keys} (keep a copy: without it, devices "
          "flashed with this build take no more updates)", file=sys.stderr)  # fmt: skip
    return key, cert


def make_bundle(
    root_image: Path, *, compatible: str, version: str, out: Path, keys: Path = KEYS
) -> Path:
    """Sign ``root_image`` (an ext4 image of the root filesystem) into a bundle at ``out``."""
    key, cert = signing_key(keys)
    with tempfile.TemporaryDirectory(prefix="qey-bundle-") as tmp:
        content = Path(tmp) / "content"
        content.mkdir()
        try:
            os.link(root_image, content / "root.ext4")
        except OSError:
            shutil.copyfile(root_image, content / "root.ext4")
        (content / "manifest.raucm").write_text(
            "[update]\n"
            f"compatible={compatible}\n"
            f"version={version}\n\n"
            "[bundle]\n"
            "format=verity\n\n"
            "[image.rootfs]\n"
            "filename=root.ext4\n"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        subprocess.run(
            ["rauc", "bundle", f"--cert={cert}", f"--key={key}", str(content), str(out)],
            check=True,
            capture_output=True,
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", help="a built image's target (build/image/TARGET/)")
    parser.add_argument("--root-image", type=Path, help="instead of --target: an ext4 image")
    parser.add_argument("--compatible", help="with --root-image: the board it is for")
    parser.add_argument("--version", help="default: the built image's version")
    parser.add_argument("--out", type=Path, help="default: build/image/TARGET/qey-VERSION.raucb")
    parser.add_argument("--keys", type=Path, default=KEYS, help=f"default: {KEYS}")
    args = parser.parse_args()
    if args.root_image is not None:
        if not (args.compatible and args.version and args.out):
            parser.error("--root-image needs --compatible, --version and --out")
        root, compatible, version, out = args.root_image, args.compatible, args.version, args.out
    elif args.target:
        built = ROOT / "build" / "image" / args.target
        root = built / "root.ext4"
        if not root.exists():
            parser.error(f"{root}: missing: build the image first (./build.sh image "
                         f"--target {args.target})")  # fmt: skip
        compatible = (built / "compatible").read_text().strip()
        version = args.version or (built / "version").read_text().strip()
        out = args.out or built / f"qey-{args.target}-{version}.raucb"
    else:
        parser.error("give --target or --root-image")
    made = make_bundle(root, compatible=compatible, version=version, out=out, keys=args.keys)
    print(f"    {made} ({made.stat().st_size / 1e6:.0f} MB, {compatible}, version {version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
