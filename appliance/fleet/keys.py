"""This device's NATS key: an Ed25519 nkey made at its first start, kept in the data directory.

The seed never leaves the device; the broker knows only the public key, which the admin
enrols on the fleet server (``qey fleet key`` prints it). The broker's challenge is signed
with the seed at every connection, so a copied public key lets nobody in.
"""

from __future__ import annotations

import os
from pathlib import Path

import nkeys

from appliance.durable import write_atomic

KEY_FILE = "fleet.nkey"


def device_seed(data_dir: Path) -> bytes:
    """The seed, made (readable by this user alone) if the device has none yet."""
    path = data_dir / KEY_FILE
    try:
        seed = path.read_bytes().strip()
    except FileNotFoundError:
        seed = bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))
        write_atomic(path, seed + b"\n", mode=0o600)
        return seed
    try:
        nkeys.from_seed(bytearray(seed))
    except nkeys.NkeysError as err:
        raise ValueError(
            f"{path}: not an nkey seed ({type(err).__name__}); remove it and restart for a new "
            "key, then enrol the new public key on the fleet server"
        ) from None
    return seed


def public_key(seed: bytes) -> str:
    """The public half (U...), the device's identity on the broker."""
    return str(nkeys.from_seed(bytearray(seed)).public_key.decode())
