"""Test oracle for the engine: torchvision / PyTorch / PIL reference data.

Writes into OUT_DIR:
- engine_reference.json: torchvision's eval crop boxes for image sizes,
  DistributedSampler orders, PyTorch optimiser trajectories, LR values.
- optimizer_*.pth: parameters and gradients for the optimiser checks.
- images/: special images (EXIF-rotated JPEG, palette PNG, 16-bit PNG, RGBA
  PNG, greyscale) and PIL's RGB decoding of each as .npy-free raw tensors.
- pipeline/: a photo and torchvision's eval-pipeline tensor of it.
Usage: make_engine_reference.py OUT_DIR
"""
import contextlib
import json
import shutil
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from torch.utils.data.distributed import DistributedSampler


def eval_boxes():
    """(h, w, resize, crop) -> torchvision's resized size and crop offsets."""
    cases = []
    for h, w in [(224, 224), (500, 375), (375, 500), (333, 517), (257, 256), (1000, 120), (97, 131)]:
        for resize, crop in [(256, 224), (232, 224), (128, 112)]:
            img = torch.zeros(3, h, w)
            resized = F.resize(img, resize, antialias=True)
            rh, rw = resized.shape[1:]
            top = int(round((rh - crop) / 2.0))
            left = int(round((rw - crop) / 2.0))
            cases.append({"height": h, "width": w, "resize": resize, "crop": crop,
                          "resized_height": rh, "resized_width": rw, "top": top, "left": left})
    return cases


def random_resized_crop_stats():
    """Statistics of torchvision's RandomResizedCrop.get_params over many draws."""
    torch.manual_seed(0)
    cases = []
    for h, w in [(300, 400), (100, 400), (500, 375)]:
        img = torch.zeros(3, h, w)
        areas, log_ratios, centred = [], [], 0
        n = 4000
        for _ in range(n):
            top, left, ch, cw = T.RandomResizedCrop.get_params(img, scale=(0.08, 1.0),
                                                               ratio=(3 / 4, 4 / 3))
            areas.append(ch * cw / (h * w))
            log_ratios.append(math.log(cw / ch))
        cases.append({"height": h, "width": w, "mean_area": float(np.mean(areas)),
                      "std_area": float(np.std(areas)), "mean_log_ratio": float(np.mean(log_ratios)),
                      "std_log_ratio": float(np.std(log_ratios)), "draws": n})
    return cases


def sampler_orders():
    cases = []
    for n, world, drop_last, shuffle in [(10, 1, False, True), (10, 3, False, True), (10, 3, True, True),
                                          (17, 4, False, True), (7, 2, False, False)]:
        for epoch in (0, 3):
            for rank in range(world):
                s = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle,
                                       seed=42, drop_last=drop_last)
                s.set_epoch(epoch)
                cases.append({"n": n, "world": world, "rank": rank, "drop_last": drop_last,
                              "shuffle": shuffle, "epoch": epoch, "seed": 42, "order": list(s)})
    return cases


def optimizer_trajectories(out):
    """Params after 5 steps of torch.optim with fixed gradients per step."""
    g = torch.Generator().manual_seed(3)
    params0 = {"w": torch.randn(4, 3, generator=g), "b": torch.randn(4, generator=g)}
    grads = [{k: torch.randn(v.shape, generator=g) for k, v in params0.items()} for _ in range(5)]
    lrs = [0.1, 0.08, 0.05, 0.05, 0.02]
    results = {}
    configs = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
        "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        "adamw": lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.05, eps=1e-8),
    }
    for name, make in configs.items():
        params = {k: v.clone().requires_grad_(True) for k, v in params0.items()}
        opt = make(list(params.values()))
        for step in range(5):
            for group in opt.param_groups:
                group["lr"] = lrs[step]
            for k, p in params.items():
                p.grad = grads[step][k].clone()
            opt.step()
        for k, p in params.items():
            results[f"{name}.{k}"] = p.detach().clone()
    state = {"initial.w": params0["w"], "initial.b": params0["b"]}
    for step, gs in enumerate(grads):
        for k, v in gs.items():
            state[f"grad{step}.{k}"] = v
    state.update(results)
    torch.save(state, out / "optimizer_reference.pth")
    return {"lrs": lrs, "steps": 5}


def special_images(out):
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (23, 37, 3), dtype=np.uint8)
    made = {}
    Image.fromarray(base).save(folder / "rgb.png")
    made["rgb.png"] = base
    grey = base[:, :, 0]
    Image.fromarray(grey).save(folder / "grey.png")
    made["grey.png"] = np.stack([grey] * 3, axis=-1)
    rgba = np.concatenate([base, rng.integers(0, 256, (23, 37, 1), dtype=np.uint8)], axis=-1)
    Image.fromarray(rgba).save(folder / "rgba.png")
    made["rgba.png"] = base
    palette = Image.fromarray(base).quantize(colors=16)
    palette.save(folder / "palette.png")
    made["palette.png"] = np.asarray(palette.convert("RGB"))
    deep = (base[:, :, 0].astype(np.uint16) * 257)
    Image.fromarray(deep).save(folder / "grey16.png")
    made["grey16.png"] = np.stack([base[:, :, 0]] * 3, axis=-1)
    Image.fromarray(base).save(folder / "lossless.webp", lossless=True)
    made["lossless.webp"] = base
    Image.fromarray(base).save(folder / "lossy.webp", quality=90)
    made["lossy.webp"] = np.asarray(Image.open(folder / "lossy.webp").convert("RGB"))
    Image.fromarray(base).save(folder / "plain.tiff")
    made["plain.tiff"] = base
    Image.fromarray(base).save(folder / "plain.bmp")
    made["plain.bmp"] = base
    Image.fromarray(base).save(folder / "plain.ppm")
    made["plain.ppm"] = base
    # EXIF orientation 6: rotate 90 degrees clockwise to display.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(base).save(folder / "rotated.jpg", exif=exif, quality=100, subsampling=0)
    from PIL import ImageOps
    made["rotated.jpg"] = np.asarray(ImageOps.exif_transpose(Image.open(folder / "rotated.jpg")).convert("RGB"))
    for name, pixels in made.items():
        pixels = np.array(pixels, copy=True)
        torch.save({"pixels": torch.from_numpy(pixels)}, folder / f"{name}.expected.pth")
    return sorted(made)


def pipeline_reference(out):
    """torchvision's eval pipeline on a real photograph (scikit-image's)."""
    folder = out / "pipeline"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        from skimage import data
        photo = data.chelsea()
    except Exception:
        rng = np.random.default_rng(9)
        photo = rng.integers(0, 256, (300, 451, 3), dtype=np.uint8)
    Image.fromarray(photo).save(folder / "photo.png")
    pipeline = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                          T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    tensor = pipeline(Image.open(folder / "photo.png").convert("RGB"))
    torch.save({"tensor": tensor}, folder / "photo.expected.pth")
    return list(photo.shape)


@contextlib.contextmanager
def resizing_uint8_natively(native):
    """torchvision's v2 Resize resamples uint8 with ATen's uint8 kernel where
    ATen runs AVX2 or AVX-512 kernels (or on ARM64), and in float, rounded,
    elsewhere: this makes it take one way whatever the CPU."""
    import torchvision.transforms.v2.functional._geometry as geometry
    chosen = geometry._do_native_uint8_resize_on_cpu
    geometry._do_native_uint8_resize_on_cpu = lambda interpolation: native
    try:
        yield
    finally:
        geometry._do_native_uint8_resize_on_cpu = chosen


def classifier_reference(out):
    """Real photographs and their evaluation inputs, computed independently of
    our code: torchvision's v2 transforms on uint8 tensors and its classic PIL
    pipeline (256/224, ImageNet mean/std), and Keras' way of feeding its
    weights: load_img(path, target_size=(224, 224), interpolation="bilinear"),
    which is PIL's open, convert("RGB") and resize, then preprocess_input's
    "tf" mode, x / 127.5 - 1."""
    import skimage
    import torchvision.transforms.v2 as T2
    folder = out / "classifier"
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(skimage.__file__).parent / "data"
    expected = {}
    for name in ("chelsea.png", "rocket.jpg", "coffee.png"):
        shutil.copyfile(source / name, folder / name)
        image = Image.open(folder / name).convert("RGB")
        stem = name.split(".")[0]
        tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        v2 = T2.Compose([T2.Resize(256, antialias=True), T2.CenterCrop(224),
                         T2.ToDtype(torch.float32, scale=True),
                         T2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        expected[f"{stem}.torchvision_v2"] = v2(tensor)
        # Each of v2's two ways to resize uint8 (it picks one by the CPU).
        for way, native in (("uint8", True), ("float", False)):
            with resizing_uint8_natively(native):
                expected[f"{stem}.torchvision_v2_{way}"] = v2(tensor)
        pil = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                         T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        expected[f"{stem}.torchvision_pil"] = pil(image)
        squashed = np.asarray(image.resize((224, 224), Image.BILINEAR), dtype=np.float32)
        expected[f"{stem}.keras"] = torch.from_numpy(squashed / 127.5 - 1).permute(2, 0, 1)
    torch.save(expected, folder / "expected.pth")


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    reference = {
        "eval_boxes": eval_boxes(),
        "random_resized_crop": random_resized_crop_stats(),
        "sampler": sampler_orders(),
        "optimizer": optimizer_trajectories(out),
        "images": special_images(out),
        "photo_shape": pipeline_reference(out),
    }
    classifier_reference(out)
    (out / "engine_reference.json").write_text(json.dumps(reference))
    print(f"engine reference data in {out}")


if __name__ == "__main__":
    main()
