"""The on-device router: ready time, model load, route latency p50/p99 and RSS, on one thread.

Goals (issue 4): p99 <= 10 ms per command on one CPU thread; ready <= 1 s from process start.
Baseline, measured in the same run: one bare model call on a command (what routing adds to
it is the clause embeddings and the scoring). Commands: every line of models/router_commands.tsv.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

START = time.perf_counter()

COMMANDS = Path(__file__).resolve().parents[1] / "models" / "router_commands.tsv"
PASSES = 5


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def since_process_start() -> float:
    """Seconds since this process started, from /proc (includes the interpreter's start)."""
    start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    rss_start = rss_mb()
    t0 = time.perf_counter()
    from appliance.agents import BUILTIN_TYPES
    from appliance.router import Router
    from appliance.router.router import normalise

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    router = Router()
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    for cls in BUILTIN_TYPES:
        router.add_type(cls)
    router.route_blocking("warm up")  # embeds the four types' phrases
    t_embed = time.perf_counter() - t0
    ready = since_process_start()
    rss_ready = rss_mb()

    commands = [
        line.split("\t")[2]
        for line in COMMANDS.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    encoder = router._encoder  # the baseline: one bare model call per command
    bare: list[float] = []
    routed: list[float] = []
    for _ in range(PASSES):
        for command in commands:
            t0 = time.perf_counter()
            encoder.embed([normalise(command)])
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            router.route_blocking(command)
            routed.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    router.route_many(commands)
    many = time.perf_counter() - t0

    print(f"router on {router.provider}, 1 intra-op thread, {len(commands)} commands x {PASSES}")
    print(f"  ready from process start:  {ready:.2f} s  (goal <= 1 s)")
    print(
        f"    import {t_import * 1e3:.0f} ms, model load {t_load * 1e3:.0f} ms (incl. sha256), "
        f"embed 4 types {t_embed * 1e3:.0f} ms"
    )
    print(
        f"  route latency:             p50 {percentile(routed, 0.5) * 1e3:.2f} ms, "
        f"p99 {percentile(routed, 0.99) * 1e3:.2f} ms  (goal p99 <= 10 ms)"
    )
    print(
        f"  baseline, bare model call: p50 {percentile(bare, 0.5) * 1e3:.2f} ms, "
        f"p99 {percentile(bare, 0.99) * 1e3:.2f} ms"
    )
    print(f"  ratio routed/bare (p50):   {percentile(routed, 0.5) / percentile(bare, 0.5):.2f}x")
    print(f"  throughput (route_many):   {len(commands) / many:.0f} commands/s")
    print(
        f"  RSS: {rss_start:.0f} MB at start, {rss_ready:.0f} MB ready "
        f"(router and its imports: {rss_ready - rss_start:.0f} MB)"
    )
    model = router._encoder.model_path
    print(f"  model: {model.stat().st_size / 1e6:.1f} MB int8 ({model.name})")


if __name__ == "__main__":
    main()
