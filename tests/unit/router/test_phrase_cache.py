"""The phrase cache: a second start embeds nothing it embedded before, decides the same, and a
corrupt or foreign cache file costs only time."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import pytest

from appliance.agents import BUILTIN_TYPES
from appliance.router import Router, RouterSettings
from appliance.router.head import TypeHead
from appliance.router.phrase_cache import CACHE_FILE

if TYPE_CHECKING:
    from appliance.router.encoder import Vectors

pytestmark = pytest.mark.unit

COMMANDS = [
    "scan 127.0.0.1 ports 22,80",
    "how dangerous is an open telnet port on 127.0.0.1",
    "bake sourdough bread",
]


def started(cache_dir: Path) -> tuple[Router, list[int]]:
    """A router with the built-in types, its phrases embedded, and how many texts the
    encoder itself was asked to embed (the commands routed later included)."""
    router = Router(RouterSettings(cache_dir=cache_dir))
    embedded: list[int] = []
    real = router._encoder.embed

    def counting(texts: Sequence[str]) -> Vectors:
        embedded.append(len(texts))
        return real(texts)

    router._encoder.embed = counting  # type: ignore[method-assign]
    for cls in BUILTIN_TYPES:
        router.add_type(cls)
    router._embed_pending()
    return router, embedded


def test_a_second_start_embeds_no_phrase_again_and_routes_the_same(tmp_path: Path) -> None:
    first, first_embedded = started(tmp_path)
    assert sum(first_embedded) > 50  # every phrase of the built-in types
    second, second_embedded = started(tmp_path)
    assert second_embedded == []
    assert np.array_equal(first._table.vectors, second._table.vectors)
    assert [d.agent_type for d in first.route_many(COMMANDS)] == [
        d.agent_type for d in second.route_many(COMMANDS)
    ]


def test_a_corrupt_cache_is_ignored_with_a_warning_and_rewritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reference, _ = started(tmp_path / "good")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / CACHE_FILE).write_bytes(b"\x93not msgpack at all")
    with caplog.at_level(logging.WARNING):
        router, embedded = started(tmp_path / "bad")
    assert "ignoring the phrase cache" in caplog.text
    assert sum(embedded) > 50
    assert np.array_equal(router._table.vectors, reference._table.vectors)
    _, again = started(tmp_path / "bad")  # the rewritten file is good
    assert again == []


def test_a_cache_made_by_another_encoder_is_not_used(tmp_path: Path) -> None:
    started(tmp_path)
    path = tmp_path / CACHE_FILE
    cached = msgspec.msgpack.decode(path.read_bytes())
    cached["fingerprint"] = "another model/CPUExecutionProvider/onnxruntime 0/x"
    cached["vectors"] = {k: bytes(len(v)) for k, v in cached["vectors"].items()}  # all zeros
    path.write_bytes(msgspec.msgpack.encode(cached))
    router, embedded = started(tmp_path)
    assert sum(embedded) > 50
    assert np.all(np.abs(np.linalg.norm(router._table.vectors, axis=1) - 1) < 1e-3)


def test_an_unwritable_cache_directory_only_costs_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        router, _ = started(blocker / "router")
    assert "cannot write the phrase cache" in caplog.text
    assert router.route_blocking(COMMANDS[0]).agent_type == "data_collector"


def test_the_type_head_is_kept_too_and_gives_the_same_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits: list[int] = []
    real_fit = TypeHead.fit.__func__  # type: ignore[attr-defined]

    def counting_fit(cls: type[TypeHead], *args: object) -> TypeHead:
        fits.append(1)
        return real_fit(cls, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(TypeHead, "fit", classmethod(counting_fit))
    first, _ = started(tmp_path)
    assert fits == [1]
    second, _ = started(tmp_path)
    assert fits == [1]  # read back, not fitted again
    assert first._table.head is not None and second._table.head is not None
    vectors = first._table.vectors[:20]
    assert np.array_equal(
        first._table.head.probabilities(vectors), second._table.head.probabilities(vectors)
    )
