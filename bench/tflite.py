"""TensorFlow Lite benchmark, side by side in one run: LiteRT's own benchmark
tool (ai_edge_litert/tools/benchmark_litert_model.py: CPU, XNNPACK) on our
float32 and full-integer .tflite exports of Keras' ImageNet MobileNetV2
1.0/224, next to our engines on the same weights (mnv2-eval --benchmark,
batch 1, fp32 and int8). TFLite's models take one image, so batch 1 only.

Fair peers: same threads, our start-up allocator settings (GLIBC_TUNABLES);
each system measured once per round, the best median of the rounds kept.

Usage: python bench/tflite.py [--threads 2] [--rounds 3] [--runs 100]
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import BUILD, host_label, print_table, rerun_with_fair_allocator, write_json
from int8 import KERAS, photo_folder, run


def litert_median_ms(model, args, work):
    import ai_edge_litert
    tool = Path(ai_edge_litert.__file__).parent / "tools" / "benchmark_litert_model.py"
    out = work / "litert.json"
    run([sys.executable, tool, "--model", model, "--num_threads", args.threads,
         "--num_runs", args.runs, "--warmup_runs", 10, "--result_json", out])
    result = json.loads(out.read_text())
    if not result["fully_accelerated"]:
        raise SystemExit(f"LiteRT did not run all of {model} on XNNPACK")
    return result["latency"]["median_ms"]


def ours_median_ms(weights, args, work):
    out = work / "ours.json"
    run([BUILD / "apps" / "mnv2-eval", "--weights", weights, "--benchmark", "--batch-size", 1,
         "--iterations", args.runs, "--threads", args.threads, "--amp-dtype", "fp32",
         "--json", out])
    case = [c for c in json.loads(out.read_text())["cases"] if c["channels_last"]][0]
    return case["batch1_p50_ms"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="bench-results/tflite.json")
    args = parser.parse_args()
    rerun_with_fair_allocator()
    work = BUILD / "bench" / "tflite"
    work.mkdir(parents=True, exist_ok=True)
    int8_file = work / "keras_int8.pth"
    run([BUILD / "apps" / "mnv2-export", "--weights", KERAS, "--format", "int8",
         "--calibration-data", photo_folder(work), "--calibration-batch", "4",
         "--output", int8_file])
    for weights, name in [(KERAS, "fp32.tflite"), (int8_file, "int8.tflite")]:
        run([BUILD / "apps" / "mnv2-export", "--weights", weights, "--format", "tflite",
             "--output", work / name])
    systems = {
        "ours fp32 (mnv2-eval --benchmark)": lambda: ours_median_ms(KERAS, args, work),
        "LiteRT fp32 (our .tflite)": lambda: litert_median_ms(work / "fp32.tflite", args, work),
        "ours int8 (mnv2-eval --benchmark)": lambda: ours_median_ms(int8_file, args, work),
        "LiteRT int8 (our full-integer .tflite)": lambda: litert_median_ms(
            work / "int8.tflite", args, work),
    }
    best = {}
    for _ in range(args.rounds):
        for name, measure in systems.items():
            best[name] = min(best.get(name, float("inf")), measure())
    rows = [[name, f"{ms:.2f}"] for name, ms in best.items()]
    print_table(f"TensorFlow Lite on {host_label()}, {args.threads} threads, 224x224, batch 1",
                ["system", "p50 ms"], rows)
    write_json(Path(__file__).parent / args.out, {
        "host": host_label(), "threads": args.threads,
        "litert": subprocess.run([sys.executable, "-m", "pip", "show", "ai-edge-litert"],
                                 capture_output=True, text=True).stdout.split("\n")[1],
        "systems_p50_ms": best})


if __name__ == "__main__":
    main()
