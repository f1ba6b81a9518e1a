"""A command's grammar: its steps in order, what runs side by side, and its conditions.

The split is plain grammar, so it is fast and predictable: sequence words ("then", "after
that", ";", "first ... then ...") order groups of clauses; within a group, "and" (or a comma)
before a verb starts a parallel clause; "if"/"when"/"unless"/"only if" before or after a
clause make it conditional. Which agent type takes each clause is not decided here: the
router does that, among every registered type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Sequence breaks. "then" inside "if ... then ..." is one too: the split pairs it up again.
_SEQUENCE = re.compile(
    r"\s*;\s*"
    r"|\s*,?\s*\b(?:and\s+)?(?:then|afterwards|after\s+that|after\s+this|once\s+(?:that'?s|that\s+is"
    r"|it'?s|it\s+is)\s+(?:done|finished)|when\s+(?:that'?s|that\s+is|it'?s|it\s+is)\s+(?:done"
    r"|finished)|followed\s+by|finally|and\s+finally|next)\b\s*,?\s*",
    re.IGNORECASE,
)
_FIRST = re.compile(
    r"^\s*(?:first(?:\s+of\s+all)?|to\s+start(?:\s+with)?|start\s+by)\b\s*,?\s*", re.I
)
_PARALLEL_WORDS = re.compile(
    r"\s*,?\s*\b(?:in\s+parallel|at\s+the\s+same\s+time|simultaneously|concurrently|"
    r"side\s+by\s+side)\b",
    re.IGNORECASE,
)
_AND = re.compile(
    r"\s*,\s*(?:and\s+|also\s+|as\s+well\s+as\s+)?|\s+(?:and|also|as\s+well\s+as|while|plus)\s+",
    re.IGNORECASE,
)
# A condition before its clause: "if X, Y" / "if X then Y" (the "then" was split already).
_COND_PREFIX = re.compile(
    r"^\s*(?P<only>only\s+)?(?P<word>if|when|whenever|once|unless|in\s+case|provided)\b\s*"
    r"(?P<cond>[^,]+?)\s*(?:,\s*(?P<action>.+))?$",
    re.IGNORECASE,
)
# A condition after its clause: "Y if X", "Y only if X", "Y unless X", "Y in case X".
_COND_SUFFIX = re.compile(
    r"^(?P<action>.+?)\s*,?\s+(?:but\s+)?(?:(?P<only>only)\s+)?"
    r"(?P<word>if|unless|in\s+case|provided(?:\s+that)?|when(?:ever)?)\s+(?P<cond>.+)$",
    re.IGNORECASE,
)
# "scan it, and if telnet is open, record it": the condition starts a step of its own.
_COND_START = re.compile(r"\s*(?:,\s*(?:and\s+)?|\s+and\s+)(?=(?:only\s+)?(?:if|unless)\b)", re.I)
# "check if port 22 is open" asks a question: no condition.
_QUESTION_IF = re.compile(
    r"\b(?:check|see|find\s+out|test|verify|determine|look|ask|know|wonder|show\s+me"
    r"|confirm|figure\s+out|whether)\s*$",
    re.IGNORECASE,
)
_QUESTION_START = re.compile(
    r"^\s*(?:when|once)\s+(?:does|do|did|will|is|was|are|were|can|should|has|have)\b", re.I
)
# Words a clause is addressed with that say what to do: the split on "and" needs one after it.
VERBS = frozenset(
    re.findall(
        r"\S+",
        """scan rescan re-scan analyze analyse check probe report record write notify tell send
    email e-mail mail alert warn block quarantine isolate export compare list show find
    discover audit
    assess rate review triage explain open add revoke save log document map sweep ping
    summarize summarise evaluate prioritise prioritize rank note file flag store run enumerate
    investigate grade judge get give keep mark put enter make create raise inform page sort
    monitor watch collect gather inventory diff highlight verify test produce generate draft
    remove delete disable close kill stop restart reboot shut ban deny allow whitelist allowlist
    ticket escalate forward share post upload print count identify detect inspect go fetch
    archive backup back summarise interpret fix patch remediate act handle let""",
    )
)


@dataclass
class Clause:
    """One step's words, before routing; ``cond`` is the condition text that gates it."""

    text: str
    group: int  # sequence position: a clause waits for the clauses of earlier groups
    cond: str | None = None
    negate: bool = False
    parallel: bool = False  # said "in parallel": no dependency on its group's other clauses


@dataclass
class Draft:
    clauses: list[Clause] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # fragments too short to be a step


def split(command: str) -> Draft:
    """The command's clauses in order, each with its sequence group and condition."""
    draft = Draft()
    text = _FIRST.sub("", command.strip())
    pieces = [p for p in _SEQUENCE.split(text) if p is not None]
    pieces = [q for p in pieces for q in _COND_START.split(p)]
    segments = _pair_conditions([p.strip(" ,.") for p in pieces if p and p.strip(" ,.")])
    group = 0
    for segment, cond, negate in segments:
        parallel = _PARALLEL_WORDS.search(segment) is not None
        segment = _PARALLEL_WORDS.sub("", segment).strip(" ,.")
        added = False
        for part in _split_and(segment):
            part_cond, part_negate, body = _suffix_condition(part)
            if cond is not None:
                part_cond, part_negate = cond, negate
            if not _is_step(body):
                draft.dropped.append(body)
                continue
            draft.clauses.append(
                Clause(
                    text=body, group=group, cond=part_cond, negate=part_negate, parallel=parallel
                )
            )
            added = True
        if added:
            group += 1
    return draft


def _pair_conditions(pieces: list[str]) -> list[tuple[str, str | None, bool]]:
    """Each piece with the condition that gates it: a prefix condition without its action
    ("if X" split from "then Y") takes the next piece as its action."""
    out: list[tuple[str, str | None, bool]] = []
    pending: tuple[str, bool] | None = None
    for piece in pieces:
        m = _COND_PREFIX.match(piece)
        if m is not None and not _QUESTION_START.match(piece):
            negate = m["word"].lower() == "unless"
            action, cond = m["action"], m["cond"]
            if not action:
                cond, action = _cut_action(cond)
            if action:
                out.append((action, cond, negate))
            else:
                pending = (m["cond"], negate)
            continue
        if pending is not None:
            out.append((piece, pending[0], pending[1]))
            pending = None
        else:
            out.append((piece, None, False))
    if pending is not None:  # "if X" with no action: the condition is itself the step
        out.append((pending[0], None, False))
    return out


_PREDICATE = re.compile(
    r"\b(?:open|opened|found|finds|closed|critical|up|down|reachable|exposed|listening|nothing"
    r"|anything|something|clean|high|answers|responds|running)\b",
    re.IGNORECASE,
)


def _cut_action(cond: str) -> tuple[str, str | None]:
    """ "if telnet is open record it" (no comma): the action starts at the first verb after
    the condition's predicate."""
    m = _PREDICATE.search(cond)
    if m is None:
        return cond, None
    rest = cond[m.end() :]
    for w in re.finditer(r"[a-zA-Z][\w-]*", rest):
        if w.group(0).lower() in VERBS:
            return cond[: m.end() + w.start()].strip(" ,"), rest[w.start() :].strip(" ,")
    return cond, None


def _suffix_condition(part: str) -> tuple[str | None, bool, str]:
    m = _COND_SUFFIX.match(part)
    if m is None or _QUESTION_IF.search(m["action"]) or len(m["action"].split()) < 1:
        return None, False, part
    word = m["word"].lower()
    if word.startswith("when") and not _COND_WORDS.search(m["cond"]):
        return None, False, part
    return m["cond"].strip(" ,."), word == "unless", m["action"].strip(" ,.")


_COND_WORDS = re.compile(r"\b(?:open|found|finds?|closed|critical|high|reachable)\b", re.I)


def _split_and(segment: str) -> list[str]:
    """Parallel clauses: split on "and"/"," only where a verb follows, so "scan 10.0.0.1 and
    10.0.0.2" stays one clause (with two targets) and "scan it and write a report" is two."""
    parts: list[str] = []
    last = 0
    for m in _AND.finditer(segment):
        rest = segment[m.end() :]
        first = rest.split(maxsplit=1)[0].lower().strip(",.") if rest.strip() else ""
        before = segment[last : m.start()]
        if first in VERBS and len(before.split()) >= 1 and not _inside_condition(before):
            parts.append(before.strip(" ,."))
            last = m.end()
    parts.append(segment[last:].strip(" ,."))
    return [p for p in parts if p]


def _inside_condition(before: str) -> bool:
    """ "if telnet is open and record it": the "and" ends the condition, it is no list."""
    return re.match(r"^\s*(?:only\s+)?(?:if|unless|when)\b", before, re.I) is not None and (
        "," not in before
    )


def _is_step(text: str) -> bool:
    words = [w for w in re.findall(r"[a-zA-Z][\w'-]*", text)]
    return len(words) >= 1 and not (len(words) == 1 and words[0].lower() in _FILLER)


_FILLER = frozenset(re.findall(r"\w+", "please thanks thank ok okay now asap also too and then"))
