"""WebDataset shards written by Python's `webdataset` (the format's reference),
for the C++ reader's tests (tests/data/test_shards.cpp).

OUT/source/: real photographs (scikit-image's) as JPEG, PNG and WebP, and
  source.txt, a list file of them (`<path> <label>`) with classes.txt.
OUT/py/py-%06d.tar: ShardWriter shards, 5 samples each, of every source
  image (labels in `.cls`, one ending with a newline, or in `.json` for every third sample), plus a
  sample whose image is not an image (skipped when read), a sample without
  a label and a `__meta__` member (both not samples).
OUT/truncated/cut.tar: a copy of the first shard cut inside an image.
OUT/manifest.json: what a reader must find: per shard its complete samples
  in order (key, label, source file or null for the broken image).
"""
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image


def photographs():
    from skimage import data
    names = ["astronaut", "chelsea", "coffee", "rocket", "camera", "cat"]
    out = []
    for name in names:
        try:
            out.append((name, Image.fromarray(getattr(data, name)()).convert("RGB")))
        except Exception:
            pass
    if len(out) < 3:  # no scikit-image data: varied synthetic pictures
        rng = np.random.default_rng(3)
        out = [(f"synthetic{i}", Image.fromarray(
            rng.integers(0, 256, (180 + 20 * i, 240, 3), dtype=np.uint8))) for i in range(6)]
    return out


def make_source(folder):
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    formats = [("jpg", dict(quality=90)), ("png", {}), ("webp", dict(quality=80))]
    i = 0
    for copy in range(3):
        for name, photo in photographs():
            ext, options = formats[i % len(formats)]
            w, h = photo.size
            scale = (200 + 40 * copy) / max(w, h)
            image = photo.resize((int(w * scale), int(h * scale)), Image.BILINEAR)
            path = folder / f"{name}_{copy}.{ext}"
            image.save(path, **options)
            lines.append(f"{path.name} {i % 4}")
            i += 1
    (folder / "source.txt").write_text("\n".join(lines) + "\n")
    (folder / "classes.txt").write_text("zero\none\ntwo\nthree\n")
    return [(folder / line.split()[0], int(line.split()[1])) for line in lines]


def main():
    out = Path(sys.argv[1])
    shutil.rmtree(out, ignore_errors=True)
    sources = make_source(out / "source")
    samples = []
    for i, (path, label) in enumerate(sources):
        sample = {"__key__": f"photos/{path.stem}", path.suffix[1:]: path.read_bytes()}
        if i % 3 == 2:
            sample["json"] = {"label": label, "source": path.name}
        elif i == 3:
            sample["cls"] = f"{label}\n".encode()  # as some writers end it
        else:
            sample["cls"] = label
        samples.append((sample, {"key": sample["__key__"], "label": label, "source": str(path)}))
        if i == 4:
            samples.append(({"__key__": "broken/not_an_image", "jpg": b"this is not a JPEG",
                             "cls": 1},
                            {"key": "broken/not_an_image", "label": 1, "source": None}))
        if i == 7:
            samples.append(({"__key__": "unlabelled/photo", "jpg": path.read_bytes()}, None))
    (out / "py").mkdir(parents=True)
    shards = []
    with wds.ShardWriter(str(out / "py" / "py-%06d.tar"), maxcount=5, verbose=0) as sink:
        for sample, expected in samples:
            if sink.count == 0 or sink.count >= 5:
                shards.append([])
            sink.write(sample)
            if expected is not None:
                shards[-1].append(expected)
    # A metadata member, which webdataset's reader ignores.
    first = out / "py" / "py-000000.tar"
    with tarfile.open(first, "a") as tar:
        info = tarfile.TarInfo("__meta__.json")
        payload = b'{"written_by": "make_shards.py"}'
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    shutil.copy(out / "source" / "classes.txt", out / "py" / "classes.txt")

    # The first shard cut inside the image of its third sample.
    (out / "truncated").mkdir()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    images = [m for m in members if m.name.endswith((".jpg", ".png", ".webp"))]
    cut_member = images[2]
    cut = cut_member.offset_data + cut_member.size // 2
    (out / "truncated" / "cut.tar").write_bytes(first.read_bytes()[:cut])
    complete = [s for s in shards[0]
                if all(m.offset_data + m.size <= cut_member.offset
                       for m in members if m.name.startswith(s["key"] + "."))]
    manifest = {"shards": shards, "truncated_samples": len(complete),
                "classes": ["zero", "one", "two", "three"]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{sum(len(s) for s in shards)} samples in {len(shards)} shards under {out / 'py'}")


if __name__ == "__main__":
    main()
