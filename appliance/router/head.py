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

    def __init__(self, vectors: Vectors, owners: Sequence[int], types: int, l2: float) -> None:
        y = np.eye(types, dtype=np.float32)[np.asarray(owners, dtype=np.int64)]
        n = max(1, len(vectors))
        self._w = np.zeros((vectors.shape[1], types), dtype=np.float32)
        self._b = np.zeros(types, dtype=np.float32)
        for _ in range(STEPS):
            gradient = (self.probabilities(vectors) - y) / n
            self._w -= LEARNING_RATE * (vectors.T @ gradient + l2 * self._w)
            self._b -= LEARNING_RATE * gradient.sum(axis=0)

    def probabilities(self, vectors: Vectors) -> Vectors:
        logits = vectors @ self._w + self._b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]
