"""Data pipeline benchmark: our loader (C++, OpenCV, threads) against
torchvision's DataLoader (PIL, worker processes), same train transforms
(RandomResizedCrop 224, flip, to normalised float tensors), same worker count,
side by side in one run. The peer runs with our start-up allocator settings
(GLIBC_TUNABLES; this script re-runs itself with them). Prints a table with the
ratio, the host and versions, and writes JSON.

Usage: python bench/data_pipeline.py [--out bench-results/data_pipeline.json]
"""
import argparse
import os
import sys
import time

import PIL

import torch
import torchvision.transforms as T
from torchvision.datasets import ImageFolder

from common import BUILD, host_label, photo_folder, print_table, run_json, write_json

FAIR_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824"


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
    if os.environ.get("GLIBC_TUNABLES") != FAIR_TUNABLES:
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "GLIBC_TUNABLES": FAIR_TUNABLES})
    torch.set_num_threads(1)
    photo_sets = [("ImageNet-size (~500 px)", photo_folder(BUILD / "bench" / "photos")),
                  ("phone-size (~4000 px)",
                   photo_folder(BUILD / "bench" / "phone_photos", copies=16, longest=4000))]
    rows, results = [], []
    for label, folder in photo_sets:
        count = sum(1 for _ in folder.glob("*/*.jpg"))
        for workers in (1, 2):
            ours_args = [BUILD / "bench" / "mnv2-bench", "data", folder, "--workers", workers,
                         "--batch", 32, "--size", 224, "--epochs", args.epochs, "--threads", 1]
            ours = run_json(ours_args)["images_per_second"]
            full = run_json(ours_args + ["--full-decode"])["images_per_second"]
            peer = torchvision_rate(folder, workers, 32, args.epochs)
            rows.append([f"{label}, {count}", workers, f"{ours:.1f}", f"{full:.1f}",
                         f"{peer:.1f}", f"{ours / peer:.2f}x", f"{ours / full:.2f}x"])
            results.append({"photos": label, "images": count, "workers": workers,
                            "ours_images_per_second": ours,
                            "ours_full_decode_images_per_second": full,
                            "torchvision_images_per_second": peer, "ratio": ours / peer,
                            "reduced_decode_speedup": ours / full})
    print_table("train transforms at 224 (batch 32): ours (JPEGs decoded at reduced size where "
                "the crop allows), ours decoding at full size, torchvision's DataLoader with PIL "
                "and our glibc settings",
                ["photos", "workers", "ours img/s", "ours full-decode img/s",
                 "torchvision img/s", "ours / torchvision", "reduced / full"], rows)
    host = host_label()
    print("host:", host)
    print("versions: torch", torch.__version__, "PIL", PIL.__version__)
    write_json(args.out, {"host": host, "torch": torch.__version__,
                          "pil": PIL.__version__, "results": results})


if __name__ == "__main__":
    main()
