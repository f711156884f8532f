"""Contention benchmark: the main job's training (digits recipe, default
threads and workers, as a user runs it) quiet and beside one busy competing
process, in alternating rounds. Two cases: the competitor already running
when training starts (our programs then size their threads from the idle
cores), and the competitor arriving after start-up. Reports the training
throughput (img/s, median over the epochs after the first) and its ratio to
the quiet runs. Issue target: at least 0.45 on a 2-core machine.

Usage: python bench/contention.py [--epochs 4] [--rounds 2]
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BUILD, ROOT, host_label, print_table, write_json

SPIN = "while True: pass"


def train_rate(epochs, competitor, output):
    """Median train img/s over epochs 2..; `competitor`: None, "before" or "after"."""
    spinner = None
    if competitor == "before":
        spinner = subprocess.Popen([sys.executable, "-c", SPIN])
        time.sleep(1.0)  # busy before our start-up looks at the cores
    try:
        train = subprocess.Popen(
            [str(BUILD / "apps" / "mnv2-train"), "--data", str(ROOT / "data" / "digits"),
             "--recipe", "digits", "--epochs", str(epochs), "--output", str(output),
             "--overwrite"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if competitor == "after":
            time.sleep(3.0)  # past start-up: the threads are already sized
            spinner = subprocess.Popen([sys.executable, "-c", SPIN])
        if train.wait() != 0:
            raise SystemExit("mnv2-train failed")
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    first_timed = 2 if competitor != "after" else 3  # the competitor is there by then
    rates = [r["train_images_per_second"] for r in rows if r["epoch"] >= first_timed]
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="bench-results/contention.json")
    args = parser.parse_args()
    cases = {"quiet": None, "competitor from the start": "before",
             "competitor arriving after start-up": "after"}
    results = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, competitor in cases.items():
                results[name].append(train_rate(args.epochs, competitor, Path(tmp) / "run"))
    quiet = max(results["quiet"])
    rows, data = [], []
    for name, rates in results.items():
        best = max(rates)
        rows.append([name, f"{best:.0f}", f"{best / quiet:.2f}",
                     " ".join(f"{r:.0f}" for r in rates)])
        data.append({"case": name, "images_per_second": best, "vs_quiet": best / quiet,
                     "rounds": rates})
    host = host_label()
    print_table("Main job's training (digits recipe, default threads and workers) beside one "
                f"busy process, best of {args.rounds} rounds",
                ["", "train img/s", "vs quiet", "each round"], rows)
    print("host:", host)
    write_json(args.out, {"host": host, "epochs": args.epochs, "results": data})


if __name__ == "__main__":
    main()
