"""The agent types' phrase embeddings, the gate's out-of-domain phrases' (``negatives.py``), and
the type head fitted on them all, kept on disk between starts.

Embedding every registered type's phrases is most of the router's start: a fraction of a
second on a desktop, but twenty seconds on a slow core (the image under QEMU's TCG). The
phrases rarely change, so their vectors are kept in the data directory and only new phrases
are embedded; the type head fitted on a set of vectors is kept too, under the hash of all it
was fitted from. A vector is reused only where it would come out the same: the cache file
names the model's sha256, the execution provider, the onnxruntime version and the machine
that made it, and a file made by anything else is ignored (and replaced). It is only a cache:
a missing or corrupt file costs time, never a routing decision. (The image build fills it with
the image's own ``qey route``, in a chroot of its root tree.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from appliance.durable import write_atomic
from appliance.router.encoder import DIMENSIONS

if TYPE_CHECKING:
    from appliance.router.encoder import Vectors

log = logging.getLogger(__name__)

CACHE_FILE = "phrases.msgpack"
MAX_ENTRIES = 5000  # far above the built-in types' few hundred; oldest go first beyond it
MAX_HEADS = 4  # the heads of the last few sets of types (a type registered later: a new set)


class _CacheFile(msgspec.Struct, frozen=True):
    fingerprint: str
    vectors: dict[str, bytes]  # normalised phrase -> float32 little-endian, DIMENSIONS long
    heads: dict[str, bytes] = {}  # digest of what a head was fitted from -> its parameters


class PhraseCache:
    """Phrase -> vector (and digest -> head) for one encoder ``fingerprint``: loaded on first
    use, in the router's thread; ``save`` writes it back whole, atomically, once per build
    and only when something was added."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self._vectors: dict[str, bytes] = {}
        self._heads: dict[str, bytes] = {}
        self._loaded = False
        self._dirty = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            cached = msgspec.msgpack.decode(self.path.read_bytes(), type=_CacheFile)
        except FileNotFoundError:
            return
        except (OSError, msgspec.DecodeError) as err:
            log.warning("router: ignoring the phrase cache %s: %s", self.path, err)
            return
        if cached.fingerprint != self.fingerprint:
            log.info("router: phrase cache %s was made by another encoder; redone", self.path)
            return
        size = DIMENSIONS * 4
        self._vectors = {k: v for k, v in cached.vectors.items() if len(v) == size}
        self._heads = dict(cached.heads)

    def embed(self, texts: Sequence[str], embed: Callable[[list[str]], Vectors]) -> Vectors:
        """The vectors of ``texts``, calling ``embed`` only for those not cached."""
        self._load()
        known = self._vectors
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            for text, vector in zip(missing, embed(missing), strict=True):
                known[text] = vector.astype("<f4").tobytes()
            while len(known) > MAX_ENTRIES:
                del known[next(iter(known))]
            self._dirty = True
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = np.frombuffer(known[text], dtype="<f4")
        return out

    def head(self, digest: str, fit: Callable[[], bytes]) -> bytes:
        """The parameters of the head fitted from what ``digest`` names; ``fit`` only if
        they are not kept (the caller checks what it reads back)."""
        self._load()
        if digest not in self._heads:
            self._heads[digest] = fit()
            while len(self._heads) > MAX_HEADS:
                del self._heads[next(iter(self._heads))]
            self._dirty = True
        return self._heads[digest]

    def save(self) -> None:
        """Write what was added since the last save (nothing if nothing was)."""
        if not self._dirty:
            return
        self._dirty = False
        data = msgspec.msgpack.encode(_CacheFile(self.fingerprint, self._vectors, self._heads))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self.path, data)
        except OSError as err:  # a full or read-only disk: the next start embeds again
            log.warning("router: cannot write the phrase cache %s: %s", self.path, err)
