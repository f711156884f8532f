"""Builds the embedded default dataset: scikit-learn's handwritten digits.

scikit-learn ships 1,797 real 8x8 grey-level scans of handwritten digits
(values 0-16) inside its wheel, so the project's main job needs no download.
This writes them as 8-bit PNG files in an ImageFolder layout with a
stratified, fixed-seed train/val split:

    OUT/train/<digit>/<index>.png   OUT/val/<digit>/<index>.png

Usage: prepare_digits.py OUT [--val-fraction 0.2] [--seed 0]
Re-running with the same arguments does nothing.
"""
import argparse
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

FORMAT = 1  # bump when the layout or encoding changes


def write_grey_png(path, pixels):
    """An 8-bit greyscale PNG with the standard library only."""
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = {"format": FORMAT, "val_fraction": args.val_fraction, "seed": args.seed}
    stamp = args.out / "dataset.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("settings") == settings:
        return
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target
    indices = np.arange(len(labels))
    train, val = train_test_split(indices, test_size=args.val_fraction,
                                  stratify=labels, random_state=args.seed)
    shutil.rmtree(args.out, ignore_errors=True)
    for split, members in (("train", train), ("val", val)):
        for index in sorted(members):
            folder = args.out / split / str(labels[index])
            folder.mkdir(parents=True, exist_ok=True)
            write_grey_png(folder / f"{index:04d}.png", images[index])
    (args.out / "classes.txt").write_text("".join(f"{d}\n" for d in range(10)))
    stamp.write_text(json.dumps({"settings": settings, "train": len(train),
                                 "val": len(val), "classes": 10}, indent=1))
    print(f"digits: {len(train)} train / {len(val)} val images in {args.out}")


if __name__ == "__main__":
    main()
