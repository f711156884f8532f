"""Data pipeline benchmark: our loader (C++, OpenCV, threads) against
torchvision's DataLoader (PIL, worker processes), same train transforms
(RandomResizedCrop 224, flip, to normalised float tensors), same worker count,
side by side in one run, on ImageNet-size and phone-size photos, read from a
folder and from WebDataset shards (ours: the shards mnv2-train --write-shards
packs; Python: webdataset's loader on the same shards, shard shuffle plus a
shuffle buffer of 1000 as ours, split by worker). The peers run
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

from common import FAIR_TUNABLES, BUILD, host_label, photo_folder, print_table, run_json, write_json



def train_transform():
    return T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                      T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def torchvision_loader(folder, workers, batch):
    return torch.utils.data.DataLoader(ImageFolder(str(folder), train_transform()),
                                       batch_size=batch, shuffle=True, num_workers=workers,
                                       persistent_workers=True)


def webdataset_loader(shard_folder, workers, batch):
    import webdataset as wds
    shards = sorted(str(p) for p in Path(shard_folder).glob("*.tar"))
    dataset = (wds.WebDataset(shards, shardshuffle=len(shards), nodesplitter=wds.single_node_only,
                              workersplitter=wds.split_by_worker, empty_check=False)
               .shuffle(1000).decode("pil").to_tuple("jpg", "cls")
               .map_tuple(train_transform(), int).batched(batch, partial=True))
    return wds.WebLoader(dataset, batch_size=None, num_workers=workers,
                         persistent_workers=True)


def torchvision_rate(source, workers, batch, epochs, shards=False):
    loader = (webdataset_loader if shards else torchvision_loader)(source, workers, batch)
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


def peer_in(python, folder, workers, epochs, shards):
    """torchvision_rate in another interpreter: (images/s, PIL's version)."""
    out = subprocess.run([python, __file__, "--peer", folder, str(workers), str(epochs),
                          "shards" if shards else "folder"],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["images_per_second"], result["pil"]


def pack_shards(folder):
    """The folder as 4 shards or more, packed by mnv2-train --write-shards."""
    out = folder.parent / (folder.name + "_shards")
    if not (out / ".complete").exists():
        total = sum(p.stat().st_size for p in folder.glob("*/*.jpg"))
        megabytes = max(1, total // (4 * 1024 * 1024) - 1)
        subprocess.run([BUILD / "apps" / "mnv2-train", "--data", folder, "--write-shards",
                        out / "photos-%04d.tar", "--shard-max-mb", str(megabytes),
                        "--overwrite"], check=True, capture_output=True)
        (out / ".complete").write_text("ok")
    return out


def photo_folder_of(source, shards):
    return source.parent / source.name[:-len("_shards")] if shards else source


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench-results/data_pipeline.json")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-pillow-simd", action="store_true")
    parser.add_argument("--peer", nargs=4, metavar=("FOLDER", "WORKERS", "EPOCHS", "KIND"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        torch.set_num_threads(1)
        rate = torchvision_rate(args.peer[0], int(args.peer[1]), 32, int(args.peer[2]),
                                args.peer[3] == "shards")
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
    sources = []
    for label, folder in photo_sets:
        sources.append((label, folder, False))
        sources.append((label + ", shards", pack_shards(folder), True))
    for label, source, shards in sources:
        count = sum(1 for _ in photo_folder_of(source, shards).glob("*/*.jpg"))
        for workers in (1, 2):
            ours_args = [BUILD / "bench" / "mnv2-bench", "data", source, "--workers", workers,
                         "--batch", 32, "--size", 224, "--epochs", args.epochs, "--threads", 1]
            ours = run_json(ours_args)["images_per_second"]
            full = run_json(ours_args + ["--full-decode"])["images_per_second"]
            peer = torchvision_rate(source, workers, 32, args.epochs, shards)
            fast = None
            if simd:
                fast, simd_version = peer_in(simd, source, workers, args.epochs, shards)
            best = max(peer, fast or 0)
            rows.append([f"{label}, {count}", workers, f"{ours:.1f}", f"{full:.1f}",
                         f"{peer:.1f}", f"{fast:.1f}" if fast else "-",
                         f"{ours / best:.2f}x", f"{ours / full:.2f}x"])
            results.append({"photos": label, "images": count, "workers": workers,
                            "shards": shards,
                            "ours_images_per_second": ours,
                            "ours_full_decode_images_per_second": full,
                            "torchvision_pil_images_per_second": peer,
                            "torchvision_pillow_simd_images_per_second": fast,
                            "ratio_to_best_python": ours / best,
                            "reduced_decode_speedup": ours / full})
    print_table("train transforms at 224 (batch 32): ours (JPEGs decoded at reduced size where "
                "the crop allows), ours decoding at full size, torchvision's DataLoader with PIL "
                "and with pillow-simd (from shards: webdataset's loader), our glibc settings",
                ["photos", "workers", "ours img/s", "ours full-decode img/s",
                 "Python+PIL img/s", "Python+pillow-simd img/s",
                 "ours / best Python", "reduced / full"], rows)
    host = host_label()
    print("host:", host)
    print("versions: torch", torch.__version__, "PIL", PIL.__version__,
          "pillow-simd", simd_version)
    write_json(args.out, {"host": host, "torch": torch.__version__, "pil": PIL.__version__,
                          "pillow_simd": simd_version, "results": results})


if __name__ == "__main__":
    main()
