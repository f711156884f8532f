"""Where a training step spends its time, per operator: our C++ step
(mnv2-bench train-step --profile: LibTorch's legacy profiler around the
timed steps, a Chrome trace) beside torchvision's Python step under the same
profiler (torch.autograd.profiler, use_kineto=False), same
model (MobileNetV2 1.0, 1000 classes), batch, size, channels_last, SGD with
momentum and threads, in one run. Each side's self CPU time per operator,
per step, and its share of the step; the host is printed with it. Our fused
functions are operators too: mnv2::X is one's forward, "mnv2::X backward"
its backward node. The
profiler slows both steps (elementwise operators most): compare the sides
within a run, and take speed from bench/train_throughput.py.

Usage: python bench/train_profile.py [--batch 32] [--size 224] [--steps 3]
       [--threads 2] [--top 15] [--out bench-results/train_profile.json]
"""
import argparse
import json
import os
import re
import tempfile
import time
from collections import defaultdict

import torch

from common import (BUILD, host_label, print_table, rerun_with_fair_allocator, run_json,
                    torchvision_training_step, write_json)


def self_times(trace_path):
    """Self time (microseconds) per operator name in a Chrome trace of
    complete events: each event's duration less its direct children's on
    the same thread."""
    with open(trace_path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    by_thread = defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_thread[e.get("tid")].append(e)
    totals = defaultdict(float)
    calls = defaultdict(int)
    for thread_events in by_thread.values():
        thread_events.sort(key=lambda e: (float(e["ts"]), -float(e["dur"])))
        stack = []  # [end, name, self]
        for e in thread_events:
            start, dur = float(e["ts"]), float(e["dur"])
            while stack and stack[-1][0] <= start:
                _, name, own = stack.pop()
                totals[name] += own
            if stack:
                stack[-1][2] -= dur
            stack.append([start + dur, e["name"], dur])
            calls[e["name"]] += 1
        for _, name, own in stack:
            totals[name] += own
    return totals, calls


def operator(name):
    """Whether a trace event is an operator's own time: ATen's and oneDNN's
    operators, our fused functions' forwards (mnv2::) and their backward
    nodes (CppNode<mnv2::...>), autograd's backward nodes, the optimizer."""
    return (name.startswith(("aten::", "mkldnn::", "mnv2::")) or "CppNode<mnv2::" in name
            or "Optimizer" in name or "Backward" in name)


def label(name):
    """A backward node of ours by its function's name: 'mnv2::X backward'."""
    match = re.search(r"CppNode<mnv2::(?:\(anonymous namespace\)::)?(\w+)>", name)
    if match and not name.startswith("autograd::engine"):
        return f"mnv2::{match.group(1)} backward"
    return name


def ours(args):
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "ours.json")
        result = run_json([BUILD / "bench" / "mnv2-bench", "train-step", "--channels-last",
                           "--batch", args.batch, "--size", args.size, "--steps", args.steps,
                           "--threads", args.threads, "--profile", trace])
        totals, calls = self_times(trace)
    return totals, calls, result["seconds"] / args.steps


def torchvision_step(args):
    step = torchvision_training_step(args.batch, args.size, args.threads, channels_last=True)
    # The profiler our side has (the legacy one), so that both pay the same
    # overhead per operator, and the same trace reader.
    with torch.autograd.profiler.profile(use_kineto=False) as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = (time.perf_counter() - start) / args.steps
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "torchvision.json")
        prof.export_chrome_trace(trace)
        totals, calls = self_times(trace)
    return totals, calls, seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", default="bench-results/train_profile.json")
    args = parser.parse_args()
    rerun_with_fair_allocator()
    sides = {"ours": ours(args), "torchvision": torchvision_step(args)}
    names = set()
    for totals, _, _ in sides.values():
        names |= {n for n in totals if operator(n)}
    per_step = {side: {n: totals.get(n, 0.0) / 1000 / args.steps for n in names}
                for side, (totals, _, _) in sides.items()}
    step_ms = {side: seconds * 1000 for side, (_, _, seconds) in sides.items()}
    ranked = sorted(names, key=lambda n: -max(per_step["ours"][n], per_step["torchvision"][n]))
    rows = []
    for name in ranked[:args.top]:
        row = [label(name)]
        for side in sides:
            ms = per_step[side][name]
            calls = sides[side][1].get(name, 0) // args.steps
            row += [f"{ms:.1f}", f"{100 * ms / step_ms[side]:.1f}%", calls]
        rows.append(row)
    host = host_label()
    print_table(f"Self CPU time per training step, batch {args.batch} at {args.size}, "
                f"channels_last, {args.threads} threads; step: ours {step_ms['ours']:.0f} ms, "
                f"torchvision {step_ms['torchvision']:.0f} ms; {host}",
                ["operator", "ours ms", "share", "calls", "torchvision ms", "share", "calls"],
                rows)
    write_json(args.out, {"host": host, "batch": args.batch, "size": args.size,
                          "threads": args.threads, "steps": args.steps,
                          "step_ms": step_ms, "self_ms_per_step": per_step})


if __name__ == "__main__":
    main()
