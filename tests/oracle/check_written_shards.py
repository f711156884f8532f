"""Shards our C++ writer made (tests/data/test_shards.cpp), read by Python's
webdataset: every source image once under its index as key, its label in
`.cls`, the bytes unchanged (kept/) or re-encoded to a longer side of 64
(small/), and classes.txt beside them."""
import sys
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        sys.exit(1)


def read_all(folder):
    shards = sorted(str(p) for p in folder.glob("*.tar"))
    return list(wds.WebDataset(shards, shardshuffle=False, empty_check=False)), shards


def main():
    written = Path(sys.argv[1]) / "shards"
    source = Path(sys.argv[2]) / "source"
    lines = [l.split() for l in (source / "source.txt").read_text().splitlines() if l.strip()]
    classes = (source / "classes.txt").read_text()

    kept, shards = read_all(written / "kept")
    check(len(shards) >= 3 and len(kept) == len(lines),
          f"webdataset reads {len(kept)} samples from {len(shards)} shards (source: {len(lines)})")
    keys = sorted(s["__key__"] for s in kept)
    check(keys == [f"{i:09d}" for i in range(len(lines))], "keys are the source indices, each once")
    for sample in kept:
        name, label = lines[int(sample["__key__"])]
        ext = Path(name).suffix[1:].lower()
        check(ext in sample and sample[ext] == (source / name).read_bytes()
              and int(sample["cls"]) == int(label),
              f"{sample['__key__']}.{ext}: the bytes of {name}, label {label}")
    order = [int(s["__key__"]) for s in kept]
    check(order != sorted(order), "samples are written in a shuffled order")
    check((written / "kept" / "classes.txt").read_text() == classes, "classes.txt beside the shards")

    small, _ = read_all(written / "small")
    check(len(small) == len(lines), "the re-encoded shards hold every sample")
    for sample in small:
        name, label = lines[int(sample["__key__"])]
        image = Image.open(__import__("io").BytesIO(sample["jpg"]))
        original = Image.open(source / name).convert("RGB")
        w, h = original.size
        want = (round(w * 64 / max(w, h)), round(h * 64 / max(w, h)))
        check(image.format == "JPEG" and image.size == want and int(sample["cls"]) == int(label),
              f"{name} re-encoded as a {image.size} JPEG (want {want})")
        reference = np.asarray(original.resize(want, Image.BOX), dtype=np.float32)
        error = np.abs(np.asarray(image.convert("RGB"), dtype=np.float32) - reference).mean()
        check(error < 6, f"  and looks like it (mean abs difference {error:.2f} levels)")


if __name__ == "__main__":
    main()
