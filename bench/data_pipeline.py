"""Data pipeline benchmark: our loader (C++, OpenCV, threads) against
torchvision's DataLoader (PIL, worker processes), same train transforms
(RandomResizedCrop 224, flip, to normalised float tensors), same worker count,
side by side in one run. Prints a table with the ratio and writes JSON.

Usage: python bench/data_pipeline.py [--out bench-results/data_pipeline.json]
"""
import argparse
import time

import torch
import torchvision.transforms as T
from torchvision.datasets import ImageFolder

from common import BUILD, photo_folder, print_table, run_json, write_json


def torchvision_rate(folder, workers, batch, epochs):
    transform = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    loader = torch.utils.data.DataLoader(ImageFolder(str(folder), transform), batch_size=batch,
                                         shuffle=True, num_workers=workers,
                                         persistent_workers=True)
    for _ in loader:  # warm-up epoch: worker start-up and page cache
        pass
    start, images = time.perf_counter(), 0
    for _ in range(epochs):
        for x, _ in loader:
            images += x.shape[0]
    return images / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench-results/data_pipeline.json")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = photo_folder(BUILD / "bench" / "photos")
    count = sum(1 for _ in folder.glob("*/*.jpg"))
    rows, results = [], []
    for workers in (1, 2):
        ours = run_json([BUILD / "bench" / "mnv2-bench", "data", folder, "--workers", workers,
                         "--batch", 32, "--size", 224, "--epochs", args.epochs, "--threads", 1])
        peer = torchvision_rate(folder, workers, 32, args.epochs)
        ratio = ours["images_per_second"] / peer
        rows.append([workers, f"{ours['images_per_second']:.1f}", f"{peer:.1f}", f"{ratio:.2f}x"])
        results.append({"workers": workers, "ours_images_per_second": ours["images_per_second"],
                        "torchvision_images_per_second": peer, "ratio": ratio})
    print_table(f"train transforms at 224 on {count} JPEG photos (batch 32)",
                ["workers", "ours img/s", "torchvision img/s", "ratio"], rows)
    write_json(args.out, {"images": count, "results": results})


if __name__ == "__main__":
    main()
