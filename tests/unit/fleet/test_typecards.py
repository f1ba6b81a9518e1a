"""Type cards: what one device tells another's router of its agent types, held to bounds,
and the routable set that follows the devices up."""

from __future__ import annotations

import msgspec
import pytest

from appliance.fleet.typecards import (
    MAX_CARDS,
    MAX_DESCRIPTION,
    MAX_PHRASE,
    MAX_PHRASES,
    FleetTypes,
    TypeCard,
    cards_of,
    decode,
    digest,
    encode,
)
from appliance.runtime import Agent

pytestmark = pytest.mark.unit


class Routed(Agent):
    name = "routed"
    description = "Counts the routers on a network."
    capabilities = ("count routers",)
    examples = ("how many routers are there",)


class Inner(Agent):
    name = "inner"
    description = "Keeps the appliance's own books."
    internal = True


def card(name: str, description: str = "Does a thing.", **kw: list[str]) -> TypeCard:
    return TypeCard(name=name, description=description, **kw)


def test_a_card_carries_a_routable_types_own_words_and_no_internal_type_has_one() -> None:
    assert cards_of([Routed, Inner]) == [
        TypeCard(
            name="routed",
            description="Counts the routers on a network.",
            capabilities=["count routers"],
            examples=["how many routers are there"],
        )
    ]


def test_the_digest_changes_with_any_word_and_not_with_the_order() -> None:
    a, b = card("a"), card("b")
    assert digest([a, b]) == digest([b, a])
    assert digest([a, b]) != digest([a, card("b", "Does another thing.")])
    assert decode(encode([a, b])) == ([a, b], [])


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (card("a.b"), "not an agent type's name"),
        (card("*"), "not an agent type's name"),
        (card("a", examples=["x y"] * (MAX_PHRASES + 1)), "phrases, more than"),
        (card("a", "x" * (MAX_DESCRIPTION + 1)), "description over"),
        (card("a", capabilities=["x" * (MAX_PHRASE + 1)]), "phrase over"),
    ],
)
def test_a_card_out_of_bounds_is_left_out_naming_why_and_the_rest_kept(
    bad: TypeCard, words: str
) -> None:
    good = card("good")
    kept, problems = decode(encode([bad, good]))
    assert kept == [good]
    assert len(problems) == 1 and words in problems[0]


def test_more_cards_than_the_bound_are_refused() -> None:
    with pytest.raises(ValueError, match="more than"):
        decode(encode([card(f"t{i}") for i in range(MAX_CARDS + 1)]))


def test_what_is_not_a_list_of_cards_is_refused() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode(msgspec.msgpack.encode({"name": "a"}))
    with pytest.raises(msgspec.DecodeError):
        decode(b"\xc1")


def test_routable_types_follow_the_devices_up_and_never_shadow_local_ones() -> None:
    local = {"here"}
    told: list[tuple[list[str], list[str]]] = []
    types = FleetTypes(lambda: local)
    types.on_change(lambda came, went: told.append(([c.name for c in came], [*went])))
    cards = [card("here"), card("there"), card("unsaid")]
    served = ["here", "there"]
    assert types.wanted("beta", digest(cards), served) == ["there"]  # not what runs here
    assert types.wanted("beta", "", served) == []  # a device that says no digest: nothing
    # "unsaid": not in its heartbeat
    types.learned("beta", digest(cards), cards, served=["here", "there"])
    assert types.wanted("beta", digest(cards), served) == []  # the digest held
    types.reconcile(["beta"])
    assert types.names == ["there"] and told == [(["there"], [])]
    types.learned("gamma", "g1", [card("there", "Does it another way.")], served=["there"])
    types.reconcile(["beta", "gamma"])  # two devices run it: one card is kept, unchanged
    assert told == [(["there"], [])]
    types.reconcile(["gamma"])  # beta lost: gamma's words for it now
    assert told[-1] == (["there"], [])
    there = types.card("there")
    assert there is not None and there.description == "Does it another way."
    types.reconcile([])
    assert types.names == [] and told[-1] == ([], ["there"])
    late: list[list[str]] = []
    types.reconcile(["beta"])
    types.on_change(lambda came, went: late.append([c.name for c in came]))
    assert late == [["there"]]  # a listener that comes later hears what is held


def test_a_device_running_only_what_this_one_runs_is_asked_nothing() -> None:
    types = FleetTypes(lambda: {"collector", "analyzer"})
    assert types.wanted("beta", "d1", ["analyzer", "collector"]) == []
    assert types.wanted("beta", "d1", ["analyzer", "collector"]) == []  # held as known
    assert types.wanted("beta", "d2", ["analyzer", "collector", "extra"]) == ["extra"]
