"""The router's type head: a softmax regression over phrase embeddings, fitted on the device.

The nearest phrase is swayed by what a command shares on the surface with some phrase: "how
bad is rdp open to the network" sat nearest an executor example about an exposed rdp port,
because the service and the exposure are most of both sentences. What tells the types apart
is a few directions in the embedding (rating versus recording, one host versus a plan), and a
linear classifier fitted on the types' own phrases finds them. It is fitted whenever the set of
types changes, from their phrases alone (a few hundred vectors: milliseconds), so nothing is
trained offline and a type registered at run time is in it as soon as its phrases are
embedded. It only re-ranks: the router's confidence, and so its refusal of commands that are
like no phrase at all, still comes from the similarity to the nearest phrase.

Deterministic: full-batch gradient descent from zero, a fixed number of steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from appliance.router.encoder import Vectors

# Chosen by 5-fold cross-validation on the tune split (models/README.md): accuracy plateaued
# at 96-97% for L2 1e-4..1e-3 and 300-3000 steps; these are in its middle.
DEFAULT_L2 = 1e-3
STEPS = 500
LEARNING_RATE = 2.0


class TypeHead:
    """P(type | text) for the types of one phrase table."""

    def __init__(self, weights: Vectors, bias: Vectors) -> None:
        self._w = weights
        self._b = bias

    @classmethod
    def fit(cls, vectors: Vectors, owners: Sequence[int], types: int, l2: float) -> TypeHead:
        y = np.eye(types, dtype=np.float32)[np.asarray(owners, dtype=np.int64)]
        n = max(1, len(vectors))
        head = cls(
            np.zeros((vectors.shape[1], types), dtype=np.float32),
            np.zeros(types, dtype=np.float32),
        )
        for _ in range(STEPS):
            gradient = (head.probabilities(vectors) - y) / n
            head._w -= LEARNING_RATE * (vectors.T @ gradient + l2 * head._w)
            head._b -= LEARNING_RATE * gradient.sum(axis=0)
        return head

    @staticmethod
    def digest(vectors: Vectors, owners: Sequence[int], types: int, l2: float) -> str:
        """What a fit depends on, hashed: the same digest, the same head."""
        h = hashlib.sha256(f"{STEPS} {LEARNING_RATE} {l2!r} {types} {len(vectors)}".encode())
        h.update(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        h.update(np.asarray(owners, dtype="<i4").tobytes())
        return h.hexdigest()

    def to_bytes(self) -> bytes:
        return np.concatenate([self._b, self._w.ravel()]).astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, dimensions: int, types: int) -> TypeHead | None:
        """The head kept by ``to_bytes``; None if ``data`` is not one of this shape."""
        if len(data) != 4 * types * (dimensions + 1):
            return None
        flat = np.frombuffer(data, dtype="<f4").astype(np.float32)
        return cls(flat[types:].reshape(dimensions, types).copy(), flat[:types].copy())

    def probabilities(self, vectors: Vectors) -> Vectors:
        logits = vectors @ self._w + self._b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]
