"""The shape of a command: one step, or a plan (several steps, a schedule, a condition).

A sentence embedding says what a command is *about*, not how many things it asks for: "scan
the network then write a report" sits close to "scan the network". So the router looks at the
shape separately. Schedules and conditions are plain grammar (a time phrase, an ``if`` that
is not "check if"); steps are found by splitting the command into clauses, which the router
then embeds and routes one by one: two clauses that confidently want different agent types
make a plan, and a plan is the coordinator's.
"""

from __future__ import annotations

import re
from typing import Literal, TypeAlias

Shape: TypeAlias = Literal["scheduled", "conditional"]

_SCHEDULE = re.compile(
    r"\b(?:every|each)\s+(?:\d+\s+)?(?:second|minute|hour|day|night|morning|evening|week|month"
    r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?\b"
    r"|\b(?:hourly|daily|nightly|weekly|monthly|periodically|regularly|tonight|tomorrow)\b"
    r"|\bat\s+(?:midnight|noon|\d{1,2}(?::\d{2})?\s*(?:am|pm)\b|\d{1,2}:\d{2}\b)"
    r"|\bschedule\b|\brepeatedly\b",  # "repeat the scan" once is a rescan, not a schedule
    re.IGNORECASE,
)
# "if"/"when" open a condition, except where they only ask a question: "check if port 22 is
# open" is one step, "if port 22 is open, record it" is a plan, and "when does the cert
# expire" asks for a time ("when" then an auxiliary verb opens a question).
_QUESTION = r"(?!\s+(?:does|do|did|is|are|was|were|will|would|can|could|has|have|had)\b)"
_CONDITION = re.compile(
    rf"(?:^|[,;:]\s*|\band\s+|\bthen\s+)(?:if|when{_QUESTION}|whenever|unless|once)\b"
    r"|\bif\s+so\b|\bwhenever\b|\bunless\b|\bonly\s+if\b",
    re.IGNORECASE,
)
# Where one step ends and the next may begin. "and" splits too, but a clause must still
# route confidently on its own, and start with a word, to count as a step ("ports 22, 80
# and 443 on 10.0.0.80" gives one).
_CLAUSE_BREAK = re.compile(
    r"\s*[;:]\s*|\s*,\s*(?:and\s+|then\s+)?|\s+(?:and\s+)?then\s+|\s+and\s+|\s+after\s+that\s+"
    r"|\s+afterwards\s+|\s+followed\s+by\s+|^\s*first\s+|^\s*after\s+",
    re.IGNORECASE,
)
_MIN_CLAUSE_WORDS = 2
# Words that say the clauses are steps in order, not a list: "first discover the hosts, then
# scan their ports" is a plan even though both steps are the data collector's, where "discover
# hosts and open ports" is one step.
_SEQUENCE = re.compile(
    r"\bthen\b|\bafter\s+that\b|\bafterwards\b|\bfollowed\s+by\b|^\s*first\b|\bfinally\b",
    re.IGNORECASE,
)


def shape_of(command: str) -> Shape | None:
    """'scheduled' or 'conditional' when the grammar says so; None for everything else."""
    if _SCHEDULE.search(command):
        return "scheduled"
    if _CONDITION.search(command):
        return "conditional"
    return None


def is_sequenced(command: str) -> bool:
    """Whether the command orders its clauses ("first ..., then ...")."""
    return _SEQUENCE.search(command) is not None


def clauses_of(command: str) -> list[str]:
    """The parts a command may be a sequence of; a one-step command gives one clause."""
    parts = [p.strip() for p in _CLAUSE_BREAK.split(command) if p and p.strip()]
    steps = [p for p in parts if len(p.split()) >= _MIN_CLAUSE_WORDS and p[0].isalpha()]
    return steps or [command.strip()]
