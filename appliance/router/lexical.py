"""The lexical half of the router's score: which type's own phrases use a command's words.

MiniLM's embedding of a short command is swayed by what it shares on the surface with a
phrase ("port N on host", "the web server"), and less by the one word that decides the
agent type ("record", "severity", "posture"). Word overlap is the opposite: blind to
paraphrase, but sharp on those words. The router blends the two (``router.py``).

The score of a command for a type is the share of the command's informative words that the
type's phrases also use, each word weighted by how few types use it (an inverse document
frequency over types, not over phrases: a word every type uses says nothing about which),
and counted fully only when several of the type's phrases use it: the planner's phrases
mention every other type's work once ("scan, analyze and report"), and one mention should
not weigh as much as a word that the type keeps coming back to.
A word no type uses weighs most, so a command made of words the appliance never speaks of
("bake sourdough bread") scores near zero everywhere. Nothing here is learned: a type
registered at run time is scored from its own phrases as soon as the index is rebuilt.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

# Words that say nothing about which agent should act. Addresses and numbers have no letters,
# so they are never words here; "localhost" is an address too.
_STOP = frozenset(
    " ".join(
        (
            "a an the of on in at for to and or is are be been it its my me i we our us you",
            "your what which how do does did this that these those with by from any all each",
            "every again please can could would should will there here about into localhost",
        )
    ).split()
)
_SUFFIXES = ("ings", "ing", "ed", "es", "s")
_WORD = re.compile(r"[a-z]+")
# How many of a type's phrases must use a word for it to count (nearly) fully: a word in one
# phrase counts 1 - e^-(1/s), in two 1 - e^-(2/s). Chosen on the tune split with the weight.
_USES_SCALE = 1.0


def terms(text: str) -> set[str]:
    """The informative words of ``text``, lower-cased and crudely stemmed."""
    return {stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) >= 2}


def stem(word: str) -> str:
    """A crude stem, enough to make "scans", "scanning" and "scanned" one word, and
    "services" and "service", and British "analyse" and American "analyze". It need not be
    a real word, only the same for a word's forms: it is compared, never shown."""
    word = word.replace("analys", "analyz")
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


class LexicalIndex:
    """The words of each agent type's phrases, with their weights; rebuilt whole whenever
    the set of types changes (cheap: a few hundred phrases)."""

    def __init__(self, phrases: Mapping[str, Sequence[str]]) -> None:
        self.types = list(phrases)
        self._words: list[dict[str, float]] = []
        for t in self.types:
            uses = Counter(word for phrase in phrases[t] for word in terms(phrase))
            self._words.append({w: 1.0 - math.exp(-n / _USES_SCALE) for w, n in uses.items()})
        count = len(self.types)
        used_by = Counter(word for words in self._words for word in words)
        self._idf = {word: math.log((count + 1) / (n + 0.5)) for word, n in used_by.items()}
        self._unknown_idf = math.log((count + 1) / 0.5)  # a word no type uses

    def scores(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Per text, per type (in ``types`` order): the idf-weighted share of the text's
        words that the type's phrases use, 0 to 1. A text without informative words
        scores 0 everywhere."""
        out = np.zeros((len(texts), len(self.types)), dtype=np.float32)
        for i, text in enumerate(texts):
            weights = {w: self._idf.get(w, self._unknown_idf) for w in terms(text)}
            total = sum(weights.values())
            if total == 0:
                continue
            for j, words in enumerate(self._words):
                out[i, j] = sum(v * words.get(w, 0.0) for w, v in weights.items()) / total
        return out


_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_MIN_TYPO_LENGTH = 4  # shorter words are too easily another word; but "teh" is swapped


class Speller:
    """Mends one slip of the keyboard in a command's words ("scna", "qurantine", "tikcet")
    against the words of the phrases the router knows: a word none of them uses, one edit
    (a letter dropped, added, changed, or two swapped) from a word they use, becomes that
    word. The embedding splits a misspelt word into pieces that mean little, and the word
    overlap misses it altogether. Deterministic: among several candidates the most used wins,
    then the first in alphabetical order. The known words include the out-of-domain phrases,
    so "lock" is not mended into "block"."""

    def __init__(self, phrases: Iterable[str]) -> None:
        self._uses = Counter(w for p in phrases for w in _WORD.findall(p.lower()))

    def mend(self, text: str) -> str:
        """``text`` with each unknown word within one edit of a known one replaced by it."""
        return _WORD.sub(self._mend_word, text.lower())

    def _mend_word(self, match: re.Match[str]) -> str:
        word = match.group()
        if word in self._uses or len(word) < _MIN_TYPO_LENGTH - 1:
            return word
        edits = _edits(word) if len(word) >= _MIN_TYPO_LENGTH else _swaps(word)
        known = [w for w in edits if w in self._uses]
        if not known:
            return word
        return min(known, key=lambda w: (-self._uses[w], w))


def _swaps(word: str) -> set[str]:
    """Every string two neighbouring letters of ``word`` swapped."""
    return {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}


def _edits(word: str) -> set[str]:
    """Every string one deletion, transposition, replacement or insertion from ``word``."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = [a + b[1:] for a, b in splits if b]
    replaces = [a + c + b[1:] for a, b in splits if b for c in _LETTERS]
    inserts = [a + c + b for a, b in splits for c in _LETTERS]
    return _swaps(word).union(deletes, replaces, inserts)
