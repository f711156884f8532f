"""Inference benchmark, side by side in one run at 224, fp32, same threads:
our eager model (mnv2-eval --benchmark), our exported TorchScript (frozen,
run by mnv2-eval) and ONNX (run by onnxruntime), against torchvision's
mobilenet_v2 in Python eager on the same LibTorch version. Batch-1 latency
(p50) and batch-32 throughput; ratios against torchvision. Writes JSON.

Usage: python bench/inference.py [--threads 2] [--iterations 30]
"""
import argparse
import statistics
import time

import numpy as np
import torch
import torchvision

from common import BUILD, host_label, print_table, run_json, write_json


def timed(fn, x, iterations):
    for _ in range(5):
        fn(x)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return times


def measure_python(fn, batch, iterations):
    b1 = timed(fn, np.random.randn(1, 3, 224, 224).astype(np.float32), iterations)
    bn = timed(fn, np.random.randn(batch, 3, 224, 224).astype(np.float32), max(3, iterations // 5))
    return 1000 * statistics.median(b1), batch * len(bn) / sum(bn)


def ours(weights, batch, iterations, threads, json_path, channels_last, engine="fused"):
    run_json_args = [BUILD / "apps" / "mnv2-eval", "--weights", weights, "--benchmark",
                     "--batch-size", batch, "--img-size", 224, "--iterations", iterations,
                     "--threads", threads, "--amp-dtype", "fp32", "--json", json_path,
                     "--engine", engine]
    import subprocess
    subprocess.run([str(a) for a in run_json_args], check=True, capture_output=True)
    import json
    cases = json.loads(open(json_path).read())["cases"]
    case = [c for c in cases if c["channels_last"] == channels_last][0]
    return case["batch1_p50_ms"], case["images_per_second"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default="bench-results/inference.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = BUILD / "bench"
    work.mkdir(parents=True, exist_ok=True)
    model = torchvision.models.mobilenet_v2().eval()
    weights = work / "mobilenet_v2_random.pth"
    torch.save(model.state_dict(), weights)
    import subprocess
    for fmt, name, extra in [("torchscript", "model_frozen.pt", ["--freeze"]),
                             ("onnx", "model.onnx", [])]:
        subprocess.run([str(BUILD / "apps" / "mnv2-export"), "--weights", str(weights), "--format",
                        fmt, "--output", str(work / name), *extra], check=True, capture_output=True)

    results = {}
    results["ours fused"] = ours(weights, args.batch, args.iterations, args.threads,
                                 work / "fused.json", False)
    results["ours fused, channels_last input"] = ours(weights, args.batch, args.iterations,
                                                      args.threads, work / "fused.json", True)
    results["ours eager channels_last"] = ours(weights, args.batch, args.iterations, args.threads,
                                               work / "eager.json", True, "eager")
    results["ours TorchScript (frozen)"] = ours(work / "model_frozen.pt", args.batch,
                                                args.iterations, args.threads,
                                                work / "script.json", False)
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = onnxruntime.InferenceSession(str(work / "model.onnx"), options,
                                           providers=["CPUExecutionProvider"])
    results["onnxruntime on our ONNX"] = measure_python(
        lambda x: session.run(None, {"input": x}), args.batch, args.iterations)

    def torchvision_forward(x):
        with torch.no_grad():
            return model(torch.from_numpy(x))

    results["torchvision eager (Python)"] = measure_python(torchvision_forward, args.batch,
                                                           args.iterations)
    peer_latency, peer_rate = results["torchvision eager (Python)"]
    rows, data = [], []
    for name, (latency, rate) in results.items():
        rows.append([name, f"{latency:.2f}", f"{peer_latency / latency:.2f}x", f"{rate:.1f}",
                     f"{rate / peer_rate:.2f}x"])
        data.append({"name": name, "batch1_p50_ms": latency, "batch1_speedup": peer_latency / latency,
                     f"batch{args.batch}_images_per_second": rate,
                     f"batch{args.batch}_ratio": rate / peer_rate})
    print_table(f"MobileNetV2 1.0 inference at 224, fp32, {args.threads} threads "
                f"(torch {torch.__version__})",
                ["", "b1 p50 ms", "vs torchvision", f"b{args.batch} img/s", "vs torchvision"], rows)
    print("host:", host_label())
    write_json(args.out, {"threads": args.threads, "host": host_label(), "results": data})


if __name__ == "__main__":
    main()
