"""The router's type head: a softmax regression over phrase embeddings, fitted on the device.

The nearest phrase is swayed by what a command shares on the surface with some phrase: "how
bad is rdp open to the network" sat nearest an executor example about an exposed rdp port,
because the service and the exposure are most of both sentences. What tells the types apart
is a few directions in the embedding (rating versus recording, one host versus a plan), and a
linear classifier fitted on the types' own phrases finds them. It is fitted whenever the set of
types changes, from their phrases alone (a few hundred vectors: milliseconds), so nothing is
trained offline and a type registered at run time is in it as soon as its phrases are
embedded. For the types it only re-ranks: the router's confidence still comes from the
similarity to the nearest phrase. Its last class may be "out of domain" (the router's gate,
fitted from ``negatives.py``), whose probability lowers every type's score.

Deterministic: full-batch gradient descent with Nesterov's momentum from zero, a fixed number
of steps, every class weighing the same in total.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from appliance.router.encoder import Vectors


# Chosen by 5-fold cross-validation on the tune split (models/README.md), with the gate: L2 1e-4
# kept 0.6 points more in domain than 1e-3 at the same rejection; 300 steps with momentum did as
# well as 1500 without (150 half a point worse), in a fifth of the time.
DEFAULT_L2 = 1e-4
STEPS = 300
LEARNING_RATE = 2.0
MOMENTUM = 0.9


class TypeHead:
    """P(type | text) for the types of one phrase table."""

    def __init__(self, weights: Vectors, bias: Vectors) -> None:
        self._w = weights
        self._b = bias

    @classmethod
    def fit(cls, vectors: Vectors, owners: Sequence[int], types: int, l2: float) -> TypeHead:
        """Fitted with every class weighing the same in total, however many phrases it has:
        a type registered at run time with four phrases is not drowned by the hundreds of the
        built-in types and of the out-of-domain class."""
        owner = np.asarray(owners, dtype=np.int64)
        y = np.eye(types, dtype=np.float32)[owner]
        counts = np.bincount(owner, minlength=types).astype(np.float32)
        present = max(1, int((counts > 0).sum()))
        weight = (1.0 / (present * np.maximum(counts, 1.0)))[owner][:, None]  # sums to 1
        head = cls(
            np.zeros((vectors.shape[1], types), dtype=np.float32),
            np.zeros(types, dtype=np.float32),
        )
        # Nesterov's momentum: as far in a few hundred steps as plain descent in thousands
        look = cls(head._w.copy(), head._b.copy())
        step_w, step_b = np.zeros_like(head._w), np.zeros_like(head._b)
        for _ in range(STEPS):
            gradient = (look.probabilities(vectors) - y) * weight
            step_w *= MOMENTUM  # in place: stays float32
            step_w -= LEARNING_RATE * (vectors.T @ gradient + l2 * look._w)
            step_b *= MOMENTUM
            step_b -= LEARNING_RATE * gradient.sum(axis=0)
            head._w += step_w
            head._b += step_b
            look._w = head._w + MOMENTUM * step_w
            look._b = head._b + MOMENTUM * step_b
        return head

    @staticmethod
    def digest(vectors: Vectors, owners: Sequence[int], types: int, l2: float) -> str:
        """What a fit depends on, hashed: the same digest, the same head."""
        h = hashlib.sha256(
            f"balanced {STEPS} {LEARNING_RATE} {MOMENTUM} {l2!r} {types} {len(vectors)}".encode()
        )
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
