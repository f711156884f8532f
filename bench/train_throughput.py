"""Training throughput: our C++ training step against a plain torchvision
Python loop (same model, batch, image size, SGD with momentum, threads),
side by side in one run. Prints a table with the ratio and writes JSON.

Usage: python bench/train_throughput.py [--batch 32] [--size 224] [--steps 6]
"""
import argparse
import time

import torch
import torchvision

from common import BUILD, print_table, run_json, write_json


def python_rate(batch, size, steps, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=1000).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench-results/train_throughput.json")
    args = parser.parse_args()
    rows, results = [], []
    for label, extra in [("contiguous", []), ("channels_last", ["--channels-last"])]:  # mnv2-bench flags
        ours = run_json([BUILD / "bench" / "mnv2-bench", "train-step", "--batch", args.batch,
                         "--size", args.size, "--steps", args.steps, "--threads", args.threads,
                         *extra])["images_per_second"]
        results.append({"ours": label, "ours_images_per_second": ours})
        rows.append([f"ours ({label})", f"{ours:.1f}"])
    peer = python_rate(args.batch, args.size, args.steps, args.threads)
    rows.append(["torchvision + torch.optim (Python)", f"{peer:.1f}"])
    for r in results:
        r["torchvision_images_per_second"] = peer
        r["ratio"] = r["ours_images_per_second"] / peer
    rows = [row + ([f"{r['ratio']:.2f}x"] if i < len(results) else ["1.00x"])
            for i, (row, r) in enumerate(zip(rows, results + [None]))]
    print_table(f"MobileNetV2 1.0 training step, batch {args.batch} at {args.size}, "
                f"{args.threads} threads, SGD momentum",
                ["", "img/s", "ratio"], rows)
    write_json(args.out, {"batch": args.batch, "size": args.size, "threads": args.threads,
                          "results": results})


if __name__ == "__main__":
    main()
