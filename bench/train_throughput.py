"""Training throughput: our C++ training step (with its fused BatchNorm +
ReLU6 kernels, and without) against a plain torchvision Python loop and
against torch.compile of the same step (same model, batch, image size, SGD
with momentum, threads), side by side in one run; in fp32 and, where the CPU
computes bf16 natively (AVX512-BF16 or AMX), under bf16 autocast on both
sides. Fair peer: torchvision runs with our start-up
allocator settings (GLIBC_TUNABLES) in both memory formats; torchvision with
glibc's defaults runs in a separate process and is labelled as such. Prints
the host, versions and ratios against the fair channels_last peer, and our
step's GFLOP/s against the vector units' peak that mnv2-bench-peak measures on
the same threads; writes JSON.

Each round measures every system once, in the same order, so that a noisy
machine's slow minutes fall on all of them; the table keeps each system's best
round, and the ratios of ours to the peers are also printed per round.

--no-amx refuses AMX to every oneDNN in the run, ours and PyTorch's
(bench/no_amx.cpp): an AMX host measured as a CPU with AVX512-BF16 only.
ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
measures an AVX-512 host as an AVX2 one, both sides alike (the host line
names the caps, and bf16, then emulated, is skipped); our own loops still
take the CPU's widest clone, so only the libraries' instruction sets move.

Usage: python bench/train_throughput.py [--batch 32] [--size 224] [--steps 6] [--rounds 1]
                                        [--no-amx]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch

from common import (BUILD, host_label, isa_capped_below_16bit_floats, print_table,
                    rerun_with_fair_allocator, withhold_amx, run_json, torchvision_training_step,
                    write_json)


def native_bf16():
    """Whether this CPU computes bf16 natively and no cap in the environment
    holds the libraries below it (emulated, a bf16 step runs 10-25x slower
    and measures nothing worth comparing)."""
    if isa_capped_below_16bit_floats():
        return False
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def python_rate(batch, size, steps, threads, channels_last, compiled=False, bf16=False):
    step = torchvision_training_step(batch, size, threads, channels_last, compiled, bf16)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def measure_round(args):
    """Every system once: our step (C++), then the Python peers."""
    rates = {}
    bf16 = native_bf16()
    ours = [("NCHW", []), ("channels_last", ["--channels-last"]),
            ("channels_last, LibTorch's BatchNorm and ReLU6",
             ["--channels-last", "--no-fused-batchnorm"])]
    if bf16:
        ours += [("channels_last, bf16 autocast", ["--channels-last", "--amp-dtype", "bf16"]),
                 ("channels_last, bf16 autocast, LibTorch's operators",
                  ["--channels-last", "--amp-dtype", "bf16", "--no-fused-batchnorm"])]
    for label, extra in ours:
        rates[f"ours, {label}"] = run_json(
            [BUILD / "bench" / "mnv2-bench", "train-step", "--batch", args.batch, "--size",
             args.size, "--steps", args.steps, "--threads", args.threads, *extra]
        )["images_per_second"]
    for channels_last in (False, True):
        label = "channels_last" if channels_last else "NCHW"
        rates[f"torchvision + torch.optim, {label}"] = python_rate(
            args.batch, args.size, args.steps, args.threads, channels_last)
    rates["torch.compile of the same step, channels_last"] = python_rate(
        args.batch, args.size, args.steps, args.threads, True, compiled=True)
    if bf16:
        rates["torchvision + torch.optim, channels_last, bf16 autocast"] = python_rate(
            args.batch, args.size, args.steps, args.threads, True, bf16=True)
        rates["torch.compile of the same step, channels_last, bf16 autocast"] = python_rate(
            args.batch, args.size, args.steps, args.threads, True, compiled=True, bf16=True)
    default_env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    for label in ("nchw", "channels_last"):
        out = subprocess.run([sys.executable, __file__, "--peer-only", label, "--batch",
                              str(args.batch), "--size", str(args.size), "--steps",
                              str(args.steps), "--threads", str(args.threads)],
                             env=default_env, check=True, capture_output=True, text=True)
        name = "NCHW" if label == "nchw" else label
        rates[f"torchvision + torch.optim, {name}, DEFAULT glibc settings (unfair)"] = \
            float(out.stdout.strip().splitlines()[-1])
    return rates


def per_round(rounds, ours, peer):
    ratios = [r[ours] / r[peer] for r in rounds if ours in r and peer in r]
    return f"{min(ratios):.2f}-{max(ratios):.2f}x" if ratios else "n/a"


# Forward 300.8 million multiply-adds at 224 (torchvision's count), and a
# training step does about three times the forward's arithmetic.
STEP_FLOP_PER_IMAGE_224 = 3 * 2 * 300.8e6


def arithmetic_peak(threads):
    """mnv2-bench-peak's measured vector peak on as many threads as the step;
    empty, said once, where it cannot run (the rounds' results still count)."""
    try:
        result = subprocess.run([str(BUILD / "bench" / "mnv2-bench-peak"), "--threads",
                                 str(threads)], capture_output=True, text=True, check=True)
        return json.loads(result.stdout)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as error:
        print(f"arithmetic peak not measured: {error}")
        return {}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default="bench-results/train_throughput.json")
    parser.add_argument("--no-amx", action="store_true",
                        help="every system without AMX: an AVX512-BF16 CPU on an AMX host")
    parser.add_argument("--peer-only", choices=["nchw", "channels_last"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.no_amx:
        withhold_amx()
    if args.peer_only:
        print(python_rate(args.batch, args.size, args.steps, args.threads,
                          args.peer_only == "channels_last"))
        return
    rerun_with_fair_allocator()
    rounds = [measure_round(args) for _ in range(args.rounds)]
    rates = {name: max(r[name] for r in rounds) for name in rounds[0]}
    peer = rates["torchvision + torch.optim, channels_last"]
    rows = [[name, f"{rate:.1f}", f"{rate / peer:.2f}x"] for name, rate in rates.items()]
    host = host_label()
    print_table(f"MobileNetV2 1.0 training step, batch {args.batch} at {args.size}, "
                f"{args.threads} threads, SGD momentum, best of {args.rounds} rounds; ratio "
                f"against fair torchvision channels_last", ["", "img/s", "ratio"], rows)
    fp32 = "ours, channels_last"
    print(f"per round ({args.rounds}): ours fp32 / eager "
          f"{per_round(rounds, fp32, 'torchvision + torch.optim, channels_last')}, "
          f"/ torch.compile "
          f"{per_round(rounds, fp32, 'torch.compile of the same step, channels_last')}")
    if native_bf16():
        print(f"per round: ours bf16 / ours fp32 "
              f"{per_round(rounds, 'ours, channels_last, bf16 autocast', fp32)}")
    else:
        print("bf16 not measured: this CPU has neither AVX512-BF16 nor AMX, or a cap holds "
              "the libraries below them")
    peak = arithmetic_peak(args.threads)
    # How far from the machine's arithmetic limit (issue 35): the step's rate
    # against the vector units' peak measured here, not a data sheet's.
    flops = STEP_FLOP_PER_IMAGE_224 * (args.size / 224) ** 2
    for name, unit in [(fp32, "fp32_fma"), ("ours, channels_last, bf16 autocast", "bf16_dot")]:
        if name in rates and unit in peak:
            achieved = rates[name] * flops / 1e9
            print(f"{name}: about {achieved:.0f} GFLOP/s, {100 * achieved / peak[unit]['gflops']:.0f}% "
                  f"of this CPU's measured {peak[unit]['instruction']} peak "
                  f"({peak[unit]['gflops']:.0f} GFLOP/s on {args.threads} threads"
                  f"{'; AMX not measured' if unit == 'bf16_dot' else ''})")
    print("host:", host)
    print("versions: torch", torch.__version__)
    write_json(args.out, {"batch": args.batch, "size": args.size, "threads": args.threads,
                          "rounds": rounds, "arithmetic_peak": peak,
                          "host": host, "torch": torch.__version__,
                          "results": [{"name": n, "images_per_second": r, "ratio": r / peer}
                                      for n, r in rates.items()]})


if __name__ == "__main__":
    main()
