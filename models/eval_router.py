"""Evaluate the router on the labelled commands in router_commands.tsv (./build.sh eval-router).

Prints accuracy on in-domain commands, the per-type confusion, the share of out-of-domain
commands rejected ("no confident match") and route latency p50/p99, for one split. Only the
'tune' split may shape descriptions, examples and the router's weights and threshold
(``--cross-validate`` helps with that, and refuses any other split); 'test' is what the figures are
quoted on. It fails (exit 1) if an agent type's own phrases contain a test command word for
word, or if the goals (95% / 90%) are missed.

The examples copy every tune command word for word, and the gate's out-of-domain phrases
(appliance/router/negatives.py) every out-of-domain tune command (allowed: tune may shape
them), which flatters the tune figures. ``--hold-out`` drops every phrase that copies a command
of the split being evaluated, so tune is measured as test is: on commands no phrase repeats;
``--cross-validate`` gives each fold the other folds' commands back.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import msgspec

from appliance.agents import BUILTIN_TYPES
from appliance.router import Router, RouterSettings
from appliance.router.negatives import OUT_OF_DOMAIN
from appliance.router.router import phrases_of
from appliance.runtime import Agent

COMMANDS = Path(__file__).resolve().parent / "router_commands.tsv"
NONE = "none"
GOAL_ACCURACY, GOAL_REJECTION = 0.95, 0.90


def load(split: str, path: Path = COMMANDS) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        part, label, command = line.split("\t")
        if split in ("all", part):
            rows.append((label, command))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["tune", "test", "all"], default="test")
    parser.add_argument("--threshold", type=float, help="override the router's threshold")
    parser.add_argument("--lexical-weight", type=float, help="override the word-overlap weight")
    parser.add_argument(
        "--cross-validate",
        action="store_true",
        help="accuracy/rejection per setting by 5-fold cross-validation (tune only)",
    )
    parser.add_argument("--errors", action="store_true", help="list every wrong decision")
    parser.add_argument(
        "--hold-out", action="store_true", help="drop phrases that copy a command of the split"
    )
    args = parser.parse_args(argv)
    if args.cross_validate:
        if args.split != "tune":
            parser.error("--cross-validate chooses settings, so it runs on the tune split only")
        cross_validate(load("tune"))
        return 0

    leaked = leaks() if args.split != "tune" else []
    if leaked:
        for name, command in leaked:
            print(f"LEAK: test command {command!r} is one of {name}'s phrases", file=sys.stderr)
        return 1
    settings = RouterSettings()
    if args.threshold is not None:
        settings = msgspec.structs.replace(settings, threshold=args.threshold)
    if args.lexical_weight is not None:
        settings = msgspec.structs.replace(settings, lexical_weight=args.lexical_weight)
    rows = load(args.split)
    held_out = {command.lower() for _, command in rows} if args.hold_out else set()
    negatives = tuple(p for p in OUT_OF_DOMAIN if p.lower() not in held_out)
    router = Router(msgspec.structs.replace(settings, out_of_domain=negatives))
    for cls in BUILTIN_TYPES:
        router.add_type(without_phrases(cls, held_out))
    router.route_blocking("warm up")  # embeds the types; not part of the figures

    decisions, latencies = [], []
    for _, command in rows:
        t0 = time.perf_counter()
        decisions.append(router.route_blocking(command))
        latencies.append(time.perf_counter() - t0)

    confusion: Counter[tuple[str, str]] = Counter()
    for (label, command), d in zip(rows, decisions, strict=True):
        got = d.agent_type or NONE
        confusion[(label, got)] += 1
        if args.errors and got != label:
            print(f"  want {label:15} got {got:15} {d.confidence:.3f} {d.reason:12} {command}")
    accuracy, rejection = report(args.split, router, rows, confusion, latencies)
    met = accuracy >= GOAL_ACCURACY and rejection >= GOAL_REJECTION
    print(f"goals (accuracy >= {GOAL_ACCURACY:.0%}, rejection >= {GOAL_REJECTION:.0%}): ", end="")
    print("met" if met else "MISSED")
    return 0 if met or args.split != "test" else 1


def report(
    split: str,
    router: Router,
    rows: list[tuple[str, str]],
    confusion: Counter[tuple[str, str]],
    latencies: list[float],
) -> tuple[float, float]:
    labels = [t.name for t in BUILTIN_TYPES]
    in_domain = [label for label, _ in rows if label != NONE]
    ood = [label for label, _ in rows if label == NONE]
    correct = sum(confusion[(t, t)] for t in labels)
    rejected = confusion[(NONE, NONE)]
    accuracy = correct / len(in_domain) if in_domain else 0.0
    rejection = rejected / len(ood) if ood else 0.0
    lat = sorted(latencies)
    p50 = lat[len(lat) // 2] * 1e3
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1e3
    print(
        f"router eval on '{split}': {len(in_domain)} in-domain + {len(ood)} out-of-domain "
        f"commands, threshold {router.settings.threshold}, provider {router.provider}"
    )
    print(f"accuracy (in-domain):       {accuracy:.1%} ({correct}/{len(in_domain)})")
    print(f"out-of-domain rejected:     {rejection:.1%} ({rejected}/{len(ood)})")
    print(f"route latency:              p50 {p50:.2f} ms, p99 {p99:.2f} ms (one thread)")
    cols = [*labels, NONE]
    width = max(len(c) for c in cols) + 1
    print("confusion (rows: labelled, columns: routed to)")
    print(" " * width + "".join(f"{c[:12]:>13}" for c in cols))
    for row in cols:
        print(f"{row:<{width}}" + "".join(f"{confusion[(row, c)]:>13}" for c in cols))
    return accuracy, rejection


def cross_validate(rows: list[tuple[str, str]], folds: int = 5) -> None:
    """Accuracy and rejection per setting, by k-fold cross-validation on tune: each fold is
    routed by types whose examples are their own (tune copies dropped) plus the tune commands
    of the other folds, and by the gate's out-of-domain phrases less the tune copies plus the
    other folds' out-of-domain commands, so every command is routed by a router that never saw
    it. Phrases are embedded once and cached on disk."""
    order = list(range(len(rows)))
    random.Random(7).shuffle(order)  # fixed: the same folds every run
    parts = [set(order[k::folds]) for k in range(folds)]
    tune = {command.lower() for _, command in rows}
    with tempfile.TemporaryDirectory() as cache:
        routers = []
        for part in parts:
            negatives = [p for p in OUT_OF_DOMAIN if p.lower() not in tune]
            negatives += [c for i, (lab, c) in enumerate(rows) if i not in part and lab == NONE]
            router = Router(RouterSettings(cache_dir=Path(cache), out_of_domain=tuple(negatives)))
            for cls in BUILTIN_TYPES:
                others = [c for i, (lab, c) in enumerate(rows) if i not in part and lab == cls.name]
                router.add_type(with_examples(without_phrases(cls, tune), others))
            router.route_blocking("warm up")
            routers.append(router)
        n_in = sum(1 for lab, _ in rows if lab != NONE)
        n_ood = len(rows) - n_in
        print(
            "lexical weight, threshold, head weight, gate weight: "
            "accuracy / rejection (5-fold CV, tune)"
        )
        for weight, threshold, head, gate in itertools.product(
            (0.15, 0.25, 0.35), (0.30, 0.35, 0.40), (0.3, 0.5), (0.3, 0.4, 0.5)
        ):
            ok = rejected = 0
            for part, router in zip(parts, routers, strict=True):
                router.settings = msgspec.structs.replace(
                    router.settings,
                    lexical_weight=weight,
                    threshold=threshold,
                    head_weight=head,
                    gate_weight=gate,
                )
                fold = sorted(part)
                for i, d in zip(fold, router.route_many([rows[i][1] for i in fold]), strict=True):
                    label = rows[i][0]
                    ok += label != NONE and d.agent_type == label
                    rejected += label == NONE and d.agent_type is None
            print(
                f"  {weight:.2f} {threshold:.2f} {head:.1f} {gate:.1f}: "
                f"{ok / n_in:6.1%} / {rejected / max(n_ood, 1):6.1%}"
            )


def with_examples(cls: type[Agent], examples: list[str]) -> type[Agent]:
    return type(cls.__name__, (cls,), {"examples": (*cls.examples, *examples)})


def without_phrases(cls: type[Agent], phrases: set[str]) -> type[Agent]:
    """``cls`` as the router sees it, less the capabilities and examples in ``phrases``
    (lower case); ``cls`` itself when there are none to drop."""
    kept = {
        attr: tuple(p for p in getattr(cls, attr) if p.lower() not in phrases)
        for attr in ("capabilities", "examples")
    }
    if all(kept[attr] == getattr(cls, attr) for attr in kept):
        return cls
    return type(cls.__name__, (cls,), kept)


def leaks() -> list[tuple[str, str]]:
    """Test commands that an agent type lists among its own phrases, or the gate among its
    out-of-domain phrases (that would be cheating)."""
    test = {command.lower() for _, command in load("test")}
    found = [(t.name, p) for t in BUILTIN_TYPES for p in phrases_of(t) if p.lower() in test]
    return found + [("the gate", p) for p in OUT_OF_DOMAIN if p.lower() in test]


if __name__ == "__main__":
    sys.exit(main())
