"""The router: which agent type should take a free-text command, decided on the device.

Each agent type describes itself (``description``, ``capabilities``, ``examples``); the router
embeds those phrases with the sentence encoder and scores a command against each type by a
blend of two things: the cosine similarity to the type's nearest phrase, and the share of the
command's informative words that the type's phrases use (``lexical.py``). The embedding alone
is swayed by shared surface words ("port N on host"); the words alone miss paraphrase; the
blend is better than either on the tune split. A type head (``head.py``), a linear classifier
fitted on the device from the types' own phrases, then re-ranks the types by what separates
them rather than by what they share on the surface. The same head has one class more, "out of
domain", fitted from phrases of things this appliance is not for (``negatives.py``: "scan this
document", "block my calendar"): the gate. What it gives that class is taken from every type's
score, so a command that shares its words with the appliance's work but not its job stays under
the threshold, and the threshold can sit low enough for terse in-domain commands. A slip of the
keyboard ("scna", "qurantine") is mended first against the words of all those phrases
(``lexical.Speller``). Nothing is trained offline, so a type registered at run time is routable
as soon as its phrases are embedded (and the head refitted). Below ``threshold`` the answer is
"no confident match" with the closest types as candidates: a silent guess would start the wrong
agent on a security appliance.

Plans go to the planner type (the coordinator): a command with a schedule or a condition, or
whose clauses confidently want different agent types ("scan the network then write a report"),
or that orders two confident steps even of one type ("first find the hosts, then scan them").
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec
import numpy as np

from appliance.errors import BadCommand
from appliance.router.encoder import DIMENSIONS, Encoder
from appliance.router.head import DEFAULT_L2, TypeHead
from appliance.router.lexical import LexicalIndex, Speller
from appliance.router.negatives import OUT_OF_DOMAIN
from appliance.router.phrase_cache import CACHE_FILE, PhraseCache
from appliance.router.placement import DeviceType, Placement, Plugin
from appliance.router.structure import clauses_of, is_sequenced, shape_of
from appliance.runtime import Agent

if TYPE_CHECKING:
    import numpy.typing as npt

    from appliance.router.encoder import Vectors

log = logging.getLogger(__name__)

Reason: TypeAlias = Literal[
    "nearest", "multi-step", "scheduled", "conditional", "no confident match"
]

# Chosen by 5-fold cross-validation on the 'tune' split of models/router_commands.tsv
# (models/README.md says how; 631 in-domain and 196 out-of-domain commands): the weight of the
# word overlap in the blended score, and the score under which a command is refused as out of
# domain. With the gate below, 0.35 kept 93.5% in domain and refused 95.9% out of it; 0.40
# refused 97.4% but kept 92.1%, 0.30 kept as many and refused fewer.
DEFAULT_LEXICAL_WEIGHT = 0.25
DEFAULT_THRESHOLD = 0.35
# How much the type head (head.py) may move a type's score: a type the head thinks unlikely
# loses up to this much. 0.3 and 0.5 were within half a point of each other.
DEFAULT_HEAD_WEIGHT = 0.3
# The gate: how much every type's score loses when the head puts a command in the
# out-of-domain class (negatives.py): this much times that class's probability, whatever the
# command shares with a phrase. 0.3 let "scan the document on the printer" through; 0.5 began
# to refuse terse in-domain commands.
DEFAULT_GATE_WEIGHT = 0.4


class Candidate(msgspec.Struct, frozen=True):
    agent_type: str
    confidence: float


class RouteDecision(msgspec.Struct, frozen=True):
    """What the router decided, as the CLI prints it and the API returns it.

    ``agent_type`` is None for "no confident match"; ``alternatives`` are then the closest
    types, else the runners-up. ``confidence`` is the blended score (0-1): mostly the cosine
    similarity of the command to the chosen type's nearest phrase, partly the share of its
    words that the type's phrases use, less what the type head gives other types and the
    gate gives "out of domain". ``provider`` is the execution provider that really ran the
    model."""

    command: str
    agent_type: str | None
    confidence: float
    alternatives: list[Candidate]
    provider: str
    reason: Reason = "nearest"


class RouterSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the router runs. ``plugin``, ``devices`` and ``strict`` come from the board
    profile: the plugin execution provider library, and the device types wanted for the
    model, most wanted first (placement.py)."""

    model_dir: Path | None = None  # None: the model that ships in the package
    plugin: Plugin | None = None  # None: onnxruntime's own CPU provider only
    devices: list[DeviceType] = msgspec.field(default_factory=lambda: ["CPU"])
    strict: bool = False  # refuse to start on no device of those types (no CPU fallback)
    threads: int = 1
    threshold: float = DEFAULT_THRESHOLD
    lexical_weight: float = DEFAULT_LEXICAL_WEIGHT  # 0: embedding only, 1: words only
    head_weight: float = DEFAULT_HEAD_WEIGHT  # 0: no type head
    head_l2: float = DEFAULT_L2
    gate_weight: float = DEFAULT_GATE_WEIGHT  # 0: no out-of-domain class in the head
    out_of_domain: tuple[str, ...] | None = None  # None: the shipped negatives.OUT_OF_DOMAIN
    alternatives: int = 3
    planner: str = "coordinator"  # the type that takes plans: several steps, schedules, ifs
    verify: bool = True  # check the model files' sha256 at start
    cache_dir: Path | None = None  # keep the phrases' vectors here between starts


@dataclass
class _Table:
    """Every registered type's phrases, embedded: swapped whole, so readers need no lock."""

    names: list[str] = field(default_factory=list)  # agent type per row of ``vectors``
    phrases: list[str] = field(default_factory=list)
    vectors: Vectors = field(default_factory=lambda: np.zeros((0, DIMENSIONS), dtype=np.float32))
    types: list[str] = field(default_factory=list)  # distinct, in registration order
    owners: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    lexical: LexicalIndex = field(default_factory=lambda: LexicalIndex({}))
    speller: Speller = field(default_factory=lambda: Speller(()))
    head: TypeHead | None = None
    gated: bool = False  # the head's last class is "out of domain"


class Router:
    """Loads the model at construction (a missing, corrupt or strict-mode-refused model fails
    here, at start); embeds agent types as they are registered; routes commands."""

    def __init__(self, settings: RouterSettings | None = None) -> None:
        self.settings = settings or RouterSettings()
        s = self.settings
        self._encoder = Encoder(
            s.model_dir,
            plugin=s.plugin,
            devices=s.devices,
            strict=s.strict,
            threads=s.threads,
            verify=s.verify,
        )
        fingerprint = self._encoder.fingerprint
        self._cache = (
            PhraseCache(s.cache_dir / CACHE_FILE, fingerprint)
            if s.cache_dir is not None and fingerprint is not None
            else None
        )
        self._table = _Table()
        self._negatives: Vectors | None = None  # embedded by the first build
        # types to add (their phrases) or to remove (None), in the order they were asked for
        self._pending: list[tuple[str, list[str] | None]] = []
        self._lock = threading.Lock()  # _pending and the _table swap
        self._build = threading.Lock()  # one _embed_pending at a time

    @property
    def provider(self) -> str:
        """The execution provider that runs the model, as onnxruntime reports it."""
        return self._encoder.provider

    @property
    def placement(self) -> Placement:
        """The provider and device that run the model, and why not the board's first wish."""
        return self._encoder.placement

    @property
    def agent_types(self) -> list[str]:
        with self._lock:
            types = dict.fromkeys(self._table.types)
            for name, phrases in self._pending:
                if phrases is None:
                    types.pop(name, None)
                else:
                    types[name] = None
            return list(types)

    def add_type(self, cls: type[Agent]) -> None:
        """Make an agent type routable (the runtime's ``on_agent_type`` listener). Cheap: the
        phrases are embedded in a thread by the next ``prepare()`` or ``route()``, never on
        the event loop that registers the type."""
        if not cls.routable:  # internal and autonomous types take events, not commands
            log.info("router: %s is not routable; skipped", cls.name)
            return
        self.add_phrases(cls.name, phrases_of(cls))

    def add_phrases(self, name: str, phrases: Sequence[str]) -> None:
        """Make a type routable by its phrases alone: one this device does not run but
        another device of its fleet does (they come in that device's type card). A name
        already routable is replaced, phrases and all."""
        with self._lock:
            self._pending.append((name, list(phrases)))

    def remove_type(self, name: str) -> None:
        """Stop routing to a type: the last device that ran it is gone. Its phrases leave
        with the next build; a name never added is no change."""
        with self._lock:
            self._pending.append((name, None))

    async def prepare(self) -> None:
        """Embed the types registered so far, off the event loop (before 'ready')."""
        await asyncio.to_thread(self._embed_pending)

    async def route(self, command: str) -> RouteDecision:
        """Route one command; the model runs in a thread so the event loop never waits."""
        return await asyncio.to_thread(self.route_blocking, command)

    def route_blocking(self, command: str) -> RouteDecision:
        """``route`` for threads and scripts (the CLI, the evaluation, the benchmark)."""
        return self.route_many([command])[0]

    def route_many(self, commands: Sequence[str]) -> list[RouteDecision]:
        """Route several commands in one model call per clause batch (blocking)."""
        self._embed_pending()
        table = self._table  # one table for the whole call, even if a build swaps it
        if not table.types:
            raise BadCommand("no agent types are registered, so nothing can be routed")
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        for command in commands:
            mended = table.speller.mend(command)
            clauses = clauses_of(mended)
            start = len(texts)
            texts.append(mended)
            if len(clauses) > 1:
                texts.extend(clauses)
            spans.append((start, len(texts)))
        scores = self._scores(table, texts, self._encoder.embed([normalise(t) for t in texts]))
        return [
            self._decide(command, texts[a], table, scores[a:b])
            for command, (a, b) in zip(commands, spans, strict=True)
        ]

    def _decide(
        self, command: str, mended: str, table: _Table, scores: np.ndarray
    ) -> RouteDecision:
        """``scores`` row 0 is the whole command (``mended``: its slips mended), further rows
        its clauses (if several)."""
        s = self.settings
        ranked = sorted(
            (
                Candidate(name, round(float(score), 4))
                for name, score in zip(table.types, scores[0], strict=True)
            ),
            key=lambda c: -c.confidence,
        )
        best = ranked[0]
        planner = s.planner if s.planner in table.types else None
        if planner is not None:
            steps = [
                table.types[int(row.argmax())] for row in scores[1:] if row.max() >= s.threshold
            ]
            shape = shape_of(mended)
            reason: Reason | None = None
            if shape is not None and (best.confidence >= s.threshold or steps):
                reason = shape  # in domain, and timed or conditional: a plan whatever its steps
            elif len(set(steps)) >= 2 or (len(steps) >= 2 and is_sequenced(mended)):
                reason = "multi-step"
            if reason is not None:
                confidence = max(best.confidence, float(scores[1:].max(initial=0.0)))
                return RouteDecision(
                    command=command,
                    agent_type=planner,
                    confidence=round(confidence, 4),
                    alternatives=[c for c in ranked if c.agent_type != planner][: s.alternatives],
                    provider=self.provider,
                    reason=reason,
                )
        if best.confidence < s.threshold:
            return RouteDecision(
                command=command,
                agent_type=None,
                confidence=best.confidence,
                alternatives=ranked[: s.alternatives],
                provider=self.provider,
                reason="no confident match",
            )
        return RouteDecision(
            command=command,
            agent_type=best.agent_type,
            confidence=best.confidence,
            alternatives=ranked[1 : 1 + s.alternatives],
            provider=self.provider,
        )

    def _scores(self, table: _Table, texts: Sequence[str], vectors: Vectors) -> np.ndarray:
        """Per text, per type: the blend of the cosine similarity to the type's nearest
        phrase and the type's share of the text's words."""
        # Both unit length: the dot product is the cosine. einsum, not @: for a thousand
        # phrases OpenBLAS wakes its threads for this small product, and on a small board
        # they take the cores from the encoder's next run (route p50 3x slower on two cores).
        sims = np.einsum("ij,kj->ik", vectors, table.vectors)
        nearest = np.full((len(vectors), len(table.types)), -1.0, dtype=np.float32)
        for t in range(len(table.types)):
            nearest[:, t] = sims[:, table.owners == t].max(axis=1)
        w = self.settings.lexical_weight
        blend: np.ndarray = (1.0 - w) * nearest + w * table.lexical.scores(texts)
        if table.head is not None:
            p = table.head.probabilities(vectors)
            k = len(table.types)
            typed = p[:, :k]
            blend += self.settings.head_weight * (typed - typed.max(axis=1, keepdims=True))
            if table.gated:
                blend -= self.settings.gate_weight * p[:, k:]
        clipped: np.ndarray = np.clip(blend, 0.0, 1.0)  # the gate may push a score under 0
        return clipped

    def _embed_pending(self) -> None:
        """Embed the types added since the last call and swap in a new table. One build at a
        time (``_build``); ``_lock`` is held only to take the pending types and to swap, so
        ``add_type`` on the event loop never waits for an embedding or a head fit."""
        with self._build:
            with self._lock:
                asked, self._pending = self._pending, []
            if not asked:
                return
            latest = dict(asked)  # a type added then removed (or the other way) once: the last
            pending = [(n, ps) for n, ps in latest.items() if ps is not None]
            names = [name for name, phrases in pending for _ in phrases]
            phrases = [p for _, ps in pending for p in ps]
            negatives = [] if self._negatives is not None else self._out_of_domain()
            texts = [normalise(p) for p in [*phrases, *negatives]]
            if self._cache is not None:
                embedded = self._cache.embed(texts, self._encoder.embed)
            else:
                embedded = self._encoder.embed(texts)
            vectors = embedded[: len(phrases)]
            if self._negatives is None:
                self._negatives = embedded[len(phrases) :]
            old = self._table  # only a build replaces it, and this is the only build
            keep = [i for i, n in enumerate(old.names) if n not in latest]
            table = _Table(
                names=[old.names[i] for i in keep] + names,
                phrases=[old.phrases[i] for i in keep] + phrases,
                vectors=np.concatenate([old.vectors[keep], vectors]),
                types=[t for t in old.types if t not in latest] + [n for n, _ in pending],
            )
            by_type: dict[str, list[str]] = {t: [] for t in table.types}
            for name, phrase in zip(table.names, table.phrases, strict=True):
                by_type[name].append(phrase)
            table.owners = np.array([table.types.index(n) for n in table.names], dtype=np.int64)
            table.lexical = LexicalIndex(by_type)
            table.speller = Speller([*table.phrases, *self._out_of_domain()])
            table.head = self._fit_head(table)
            with self._lock:
                self._table = table
            if self._cache is not None:
                self._cache.save()  # once per build: the new vectors and head together
        removed = [n for n, ps in latest.items() if ps is None]
        log.info(
            "router: embedded %d phrases of %s%s",
            len(phrases),
            ", ".join(n for n, _ in pending) or "no type",
            f"; no longer routes to {', '.join(removed)}" if removed else "",
        )

    def _out_of_domain(self) -> list[str]:
        """The gate's negatives (none when it is off)."""
        if self.settings.gate_weight <= 0:
            return []
        shipped = self.settings.out_of_domain
        return list(OUT_OF_DOMAIN if shipped is None else shipped)

    def _fit_head(self, table: _Table) -> TypeHead | None:
        """The type head for ``table``, with the out-of-domain class last when the gate is on:
        kept in the phrase cache, fitted if it is not."""
        s = self.settings
        negatives = self._negatives if self._negatives is not None else table.vectors[:0]
        table.gated = s.gate_weight > 0 and len(negatives) > 0 and len(table.types) > 0
        if not table.gated and (s.head_weight <= 0 or len(table.types) < 2):
            return None
        owners = [table.types.index(n) for n in table.names]
        vectors = table.vectors
        classes = len(table.types)
        if table.gated:
            owners += [classes] * len(negatives)
            vectors = np.concatenate([vectors, negatives])
            classes += 1
        args = (vectors, owners, classes, s.head_l2)
        if self._cache is None:
            return TypeHead.fit(*args)
        data = self._cache.head(TypeHead.digest(*args), lambda: TypeHead.fit(*args).to_bytes())
        return TypeHead.from_bytes(data, DIMENSIONS, classes) or TypeHead.fit(*args)


def phrases_of(cls: type[Agent]) -> list[str]:
    """What an agent type says of itself, as the router's phrases (``phrases_from``)."""
    return phrases_from(cls.description, cls.capabilities, cls.examples)


def phrases_from(
    description: str, capabilities: Sequence[str], examples: Sequence[str]
) -> list[str]:
    """Short phrases from a type's words about itself: each sentence or clause of its
    description, each capability, each example. Short phrases match a command better than
    one long paragraph, whose embedding averages everything the type does."""
    parts = re.split(r"(?<=[.!?])\s+|:\s+|;\s+", description)
    phrases = [p.strip().rstrip(".") for p in parts]
    phrases += [*capabilities, *examples]
    return list(dict.fromkeys(p for p in phrases if len(p.split()) >= 2))


_NETWORK = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}\b")
_ADDRESS = re.compile(r"\b(?:\d{1,3}(?:\.\d{1,3}){3}|localhost)\b", re.IGNORECASE)
_NUMBERS = re.compile(r"\b\d+(?:\s*[-,]\s*\d+)*\b")


def normalise(text: str) -> str:
    """Addresses and numbers say nothing about *which agent*, but their many word pieces
    dominate a short command's embedding ("test if port 3389 is open on 10.1.1.1" sat nearer
    an example about 3389 on 10.1.1.1 than any phrase about probing). Replace them by words."""
    text = _NETWORK.sub("network", text.strip())
    text = _ADDRESS.sub("host", text)
    return _NUMBERS.sub("N", text)
