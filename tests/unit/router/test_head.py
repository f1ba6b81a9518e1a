"""The type head: fitted from phrases alone, deterministic, and it re-ranks without moving the
refusal threshold for the type it agrees with."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.agents import BUILTIN_TYPES
from appliance.router import Router, RouterSettings
from appliance.router.head import DEFAULT_L2, TypeHead

pytestmark = pytest.mark.unit


def clusters(seed: int) -> tuple[np.ndarray, list[int]]:
    """Three types whose phrases differ along one direction each, plus shared noise."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 16, dtype=np.float32)
    owners = [i % 3 for i in range(60)]
    vectors = centres[owners] + 0.3 * rng.standard_normal((60, 16)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), owners


def test_it_learns_which_direction_belongs_to_which_type() -> None:
    vectors, owners = clusters(1)
    head = TypeHead.fit(vectors, owners, 3, DEFAULT_L2)
    unseen, unseen_owners = clusters(2)
    predicted = head.probabilities(unseen).argmax(axis=1)
    assert (predicted == np.array(unseen_owners)).mean() > 0.9
    assert np.allclose(head.probabilities(unseen).sum(axis=1), 1.0, atol=1e-5)


def test_a_class_with_few_phrases_is_not_drowned_by_the_others() -> None:
    """A type registered at run time may bring four phrases where the built-in types and the
    out-of-domain class bring hundreds: each class weighs the same in the fit (unweighted, the
    small class took 12% of its own unseen phrases)."""
    rng = np.random.default_rng(4)
    centres = np.eye(3, 16, dtype=np.float32)
    owners = [0] * 300 + [1] * 300 + [2] * 4
    vectors = unit(centres[owners] + 0.3 * rng.standard_normal((604, 16)).astype(np.float32))
    head = TypeHead.fit(vectors, owners, 3, DEFAULT_L2)
    unseen = unit(centres[[2] * 50] + 0.3 * rng.standard_normal((50, 16)).astype(np.float32))
    assert (head.probabilities(unseen).argmax(axis=1) == 2).mean() > 0.5


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)  # type: ignore[no-any-return]


def test_the_same_phrases_give_the_same_head() -> None:
    vectors, owners = clusters(3)
    a = TypeHead.fit(vectors, owners, 3, DEFAULT_L2).probabilities(vectors)
    b = TypeHead.fit(vectors, owners, 3, DEFAULT_L2).probabilities(vectors)
    assert np.array_equal(a, b)


def test_the_router_leaves_the_agreeing_types_score_alone(router: Router) -> None:
    """The head only takes from types it finds unlikely: the winner's confidence (and so the
    out-of-domain threshold) is the blended similarity as without the head."""
    command = "scan 127.0.0.1 ports 22,80"
    decided = router.route_blocking(command)
    without = Router(RouterSettings(head_weight=0.0))
    for cls in BUILTIN_TYPES:
        without.add_type(cls)
    plain = without.route_blocking(command)
    assert decided.agent_type == plain.agent_type == "data_collector"
    assert decided.confidence == pytest.approx(plain.confidence, abs=1e-4)
