"""The router through a plugin execution provider (OpenVINO's, on this CPU) against onnxruntime's
own CPU provider, in the same run: model load, one bare model call (encode) and a whole route,
p50/p99 on one intra-op thread (OpenVINO keeps its own threads), and how far the two disagree.

This is the path a board vendor's NPU provider takes (hw/README.md); OpenVINO's plugin is the
one on the registry that runs here (a test requirement, never in the image). On a CPU it has no
NPU to win on: the figure says what the plugin path itself costs. The two routers run the same
commands interleaved, each first half the time, so a loaded machine slows both alike.
Commands: every 8th line of models/router_commands.tsv.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

COMMANDS = Path(__file__).resolve().parents[1] / "models" / "router_commands.tsv"
PASSES = 3
EVERY = 8
PACKAGE = "onnxruntime_ep_openvino"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    import importlib.util

    if importlib.util.find_spec(PACKAGE) is None:
        print(f"skipped: no {PACKAGE} here (the dev extra installs it on x86-64 Linux)")
        return 0
    import numpy as np

    from appliance.agents import BUILTIN_TYPES
    from appliance.router import Plugin, Router, RouterSettings
    from appliance.router.router import normalise

    routers: dict[str, Router] = {}
    for name, settings in (
        ("cpu", RouterSettings()),
        ("plugin", RouterSettings(plugin=Plugin(package=PACKAGE), devices=["NPU", "GPU", "CPU"])),
    ):
        t0 = time.perf_counter()
        router = Router(settings)
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        for cls in BUILTIN_TYPES:
            router.add_type(cls)
        router.route_blocking("warm up")  # embeds the types' phrases
        embed = time.perf_counter() - t0
        routers[name] = router
        print(f"{name:>6}: {router.placement.summary()}")
        print(f"        model load {load * 1e3:.0f} ms, the types' phrases {embed:.1f} s")
    cpu, plugin = routers["cpu"], routers["plugin"]
    if plugin.provider == cpu.provider:
        print("the plugin path fell back to the CPU provider: nothing to compare")
        return 1

    lines = COMMANDS.read_text(encoding="utf-8").splitlines()
    commands = [line.split("\t")[2] for line in lines if line.strip() and not line.startswith("#")][
        ::EVERY
    ]
    bare: dict[str, list[float]] = {"cpu": [], "plugin": []}
    routed: dict[str, list[float]] = {"cpu": [], "plugin": []}
    order = list(routers.items())
    for _ in range(PASSES):
        for command in commands:
            order.reverse()  # each goes first half the time: neither always finds caches cold
            text = [normalise(command)]
            for name, router in order:
                encoder = router._encoder  # the bare model call, as bench_router measures it
                t0 = time.perf_counter()
                encoder.embed(text)
                bare[name].append(time.perf_counter() - t0)
            for name, router in order:
                t0 = time.perf_counter()
                router.route_blocking(command)
                routed[name].append(time.perf_counter() - t0)

    texts = [normalise(c) for c in commands]
    difference = np.abs(plugin._encoder.embed(texts) - cpu._encoder.embed(texts)).max()
    same = sum(
        a.agent_type == b.agent_type
        for a, b in zip(plugin.route_many(commands), cpu.route_many(commands), strict=True)
    )
    print(f"{len(commands)} commands x {PASSES}, interleaved, 1 intra-op thread")
    for label, runs in (("encode (bare model call)", bare), ("route", routed)):
        p50 = {n: percentile(v, 0.5) * 1e3 for n, v in runs.items()}
        p99 = {n: percentile(v, 0.99) * 1e3 for n, v in runs.items()}
        print(
            f"  {label:<25} plugin p50 {p50['plugin']:.2f} ms, p99 {p99['plugin']:.2f} ms; "
            f"CPU provider p50 {p50['cpu']:.2f} ms, p99 {p99['cpu']:.2f} ms; "
            f"ratio p50 {p50['plugin'] / p50['cpu']:.1f}x"
        )
    print(
        f"  agreement: same agent type for {same} of {len(commands)}; "
        f"vectors differ by at most {difference:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
