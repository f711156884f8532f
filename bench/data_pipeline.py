"""Data pipeline benchmark: our loader (C++, OpenCV, threads) against
torchvision's DataLoader (PIL, worker processes), same train transforms
(RandomResizedCrop 224, flip, to normalised float tensors), same worker count,
side by side in one run, on ImageNet-size and phone-size photos. The peers run
with our start-up allocator settings (GLIBC_TUNABLES; this script re-runs itself
with them): torchvision with PIL, and with pillow-simd (the faster PIL a Python
user might pick; a source build from PyPI, made once in a virtual environment of
its own in the cache that sees the main environment's torch). Prints a table
with the ratios, the host and versions, and writes JSON.

Usage: python bench/data_pipeline.py [--out bench-results/data_pipeline.json]
                                     [--no-pillow-simd]
"""
import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

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


PILLOW_SIMD = "pillow-simd==12.1.1.post0"


def pillow_simd_python():
    """A Python whose PIL is pillow-simd and whose torch is this one's: a venv
    in the cache with a .pth line that adds this environment's packages after
    its own, so its pillow-simd shadows PIL."""
    cache = Path(os.environ.get("MNV2_CACHE", Path.home() / ".cache" / "mnv2"))
    venv = cache / "venv-pillow-simd"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", PILLOW_SIMD], check=True)
        own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
        Path(own, "mnv2-main-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        (venv / ".complete").write_text("ok")
    return python


def peer_in(python, folder, workers, epochs):
    """torchvision_rate in another interpreter: (images/s, PIL's version)."""
    out = subprocess.run([python, __file__, "--peer", folder, str(workers), str(epochs)],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["images_per_second"], result["pil"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench-results/data_pipeline.json")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-pillow-simd", action="store_true")
    parser.add_argument("--peer", nargs=3, metavar=("FOLDER", "WORKERS", "EPOCHS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        torch.set_num_threads(1)
        rate = torchvision_rate(args.peer[0], int(args.peer[1]), 32, int(args.peer[2]))
        print(json.dumps({"images_per_second": rate, "pil": PIL.__version__}))
        return
    if os.environ.get("GLIBC_TUNABLES") != FAIR_TUNABLES:
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "GLIBC_TUNABLES": FAIR_TUNABLES})
    torch.set_num_threads(1)
    photo_sets = [("ImageNet-size (~500 px)", photo_folder(BUILD / "bench" / "photos")),
                  ("phone-size (~4000 px)",
                   photo_folder(BUILD / "bench" / "phone_photos", copies=16, longest=4000))]
    simd = None if args.no_pillow_simd else pillow_simd_python()
    simd_version = None
    rows, results = [], []
    for label, folder in photo_sets:
        count = sum(1 for _ in folder.glob("*/*.jpg"))
        for workers in (1, 2):
            ours_args = [BUILD / "bench" / "mnv2-bench", "data", folder, "--workers", workers,
                         "--batch", 32, "--size", 224, "--epochs", args.epochs, "--threads", 1]
            ours = run_json(ours_args)["images_per_second"]
            full = run_json(ours_args + ["--full-decode"])["images_per_second"]
            peer = torchvision_rate(folder, workers, 32, args.epochs)
            fast = None
            if simd:
                fast, simd_version = peer_in(simd, folder, workers, args.epochs)
            best = max(peer, fast or 0)
            rows.append([f"{label}, {count}", workers, f"{ours:.1f}", f"{full:.1f}",
                         f"{peer:.1f}", f"{fast:.1f}" if fast else "-",
                         f"{ours / best:.2f}x", f"{ours / full:.2f}x"])
            results.append({"photos": label, "images": count, "workers": workers,
                            "ours_images_per_second": ours,
                            "ours_full_decode_images_per_second": full,
                            "torchvision_pil_images_per_second": peer,
                            "torchvision_pillow_simd_images_per_second": fast,
                            "ratio_to_best_python": ours / best,
                            "reduced_decode_speedup": ours / full})
    print_table("train transforms at 224 (batch 32): ours (JPEGs decoded at reduced size where "
                "the crop allows), ours decoding at full size, torchvision's DataLoader with PIL "
                "and with pillow-simd, our glibc settings",
                ["photos", "workers", "ours img/s", "ours full-decode img/s",
                 "torchvision+PIL img/s", "torchvision+pillow-simd img/s",
                 "ours / best Python", "reduced / full"], rows)
    host = host_label()
    print("host:", host)
    print("versions: torch", torch.__version__, "PIL", PIL.__version__,
          "pillow-simd", simd_version)
    write_json(args.out, {"host": host, "torch": torch.__version__, "pil": PIL.__version__,
                          "pillow_simd": simd_version, "results": results})


if __name__ == "__main__":
    main()
