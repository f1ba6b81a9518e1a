"""The router's word-overlap score: stems, weights, and types added at run time."""

from __future__ import annotations

import pytest

from appliance.router.lexical import LexicalIndex, Speller, terms

pytestmark = pytest.mark.unit

PHRASES = {
    "data_collector": ["scan a host for open ports", "discover hosts on a network"],
    "executor": ["record findings in the report", "log a finding"],
}


def test_forms_of_a_word_are_one_term() -> None:
    assert terms("Scanning scans scanned") == terms("scan")
    assert terms("analyse the services") == terms("analyzes a service")


def test_addresses_numbers_and_filler_are_not_terms() -> None:
    assert terms("scan 10.0.0.1/24 on port 22 for me please") == terms("scan port")


def test_a_command_scores_highest_for_the_type_that_uses_its_words() -> None:
    scores = LexicalIndex(PHRASES).scores(["record the finding for 10.0.0.5"])[0]
    assert scores[1] > 0.5  # "record" and "finding" are the executor's words
    assert scores[0] == 0.0


def test_words_no_type_uses_score_nothing() -> None:
    scores = LexicalIndex(PHRASES).scores(["bake sourdough bread", "the of 42"])
    assert scores.max() == 0.0


def test_a_new_type_is_scored_from_its_own_phrases() -> None:
    index = LexicalIndex({**PHRASES, "weather": ["weather forecast", "will it rain tomorrow"]})
    scores = index.scores(["weather forecast for tomorrow"])[0]
    assert index.types[int(scores.argmax())] == "weather"


def test_a_slip_of_the_keyboard_is_mended_to_a_known_word() -> None:
    speller = Speller([*PHRASES["data_collector"], *PHRASES["executor"], "open a ticket"])
    assert speller.mend("scna the hsot") == "scan the host"  # swapped letters
    assert speller.mend("opne a tiket for teh finding") == "open a ticket for the finding"
    assert speller.mend("recrd findings") == "record findings"  # a letter dropped


def test_words_known_or_far_from_any_are_left_alone() -> None:
    speller = Speller(["block a host", "lock the car"])
    assert speller.mend("lock the car") == "lock the car"  # known: never "block"
    assert speller.mend("bake sourdough bread") == "bake sourdough bread"
    assert speller.mend("port 22 on 10.0.0.1") == "port 22 on 10.0.0.1"
