"""Test oracle: writes torchvision's MobileNetV2 weights, inputs and outputs.

Python is never part of the product; this script only produces reference data
that the C++ tests compare against. Usage: make_reference.py OUT_DIR
"""
import json
import sys
from pathlib import Path

import torch
import torchvision

# (name, width_mult, num_classes, state_dict container written)
CONFIGS = [
    ("w100_c1000", 1.0, 1000, "ordered"),
    ("w050_c10", 0.5, 10, "dict"),
    ("w075_c100", 0.75, 100, "ordered"),
    ("w140_c1000", 1.4, 1000, "dict"),
    ("w035_c7", 0.35, 7, "ordered"),
    ("w100_c1000_legacy", 1.0, 1000, "legacy"),  # pre-1.6 torch.save format
]
COUNT_WIDTHS = [0.35, 0.5, 0.75, 1.0, 1.3, 1.4]
FEATURE_MAP_LAYERS = [3, 6, 13, 18]  # last layer at strides 4, 8, 16, 32


def randomise_batchnorm(model, generator):
    """Random BN statistics and affine parameters, so eval mode is not identity."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
            m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=generator)))


def multiply_adds(model, size):
    """Conv2d and Linear multiply-adds, counted with forward hooks."""
    total = 0

    def conv_hook(m, inputs, output):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        total += output.numel() // output.shape[0] * (m.in_channels // m.groups) * k

    def linear_hook(m, inputs, output):
        nonlocal total
        total += m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return total


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(20180113)
    torch.manual_seed(0)
    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "models": [], "counts": []}
    for name, width, classes, container in CONFIGS:
        model = torchvision.models.mobilenet_v2(width_mult=width, num_classes=classes)
        with torch.no_grad():
            randomise_batchnorm(model, generator)
        model.eval()
        state = model.state_dict()
        if container == "legacy":
            torch.save(state, out / f"{name}.pth", _use_new_zipfile_serialization=False)
        else:
            torch.save(state if container == "ordered" else dict(state), out / f"{name}.pth")
        x224 = torch.randn(2, 3, 224, 224, generator=generator)
        x_odd = torch.randn(2, 3, 97, 131, generator=generator)
        with torch.no_grad():
            ref = {
                "input_224": x224,
                "output_224": model(x224),
                "input_odd": x_odd,
                "output_odd": model(x_odd),
                "embedding_224": torch.flatten(
                    torch.nn.functional.adaptive_avg_pool2d(model.features(x224), 1), 1),
            }
            for i, layer in enumerate(FEATURE_MAP_LAYERS):
                ref[f"feature_map_{i}"] = model.features[: layer + 1](x224)
        torch.save(ref, out / f"{name}_io.pth")
        manifest["models"].append({"name": name, "width_mult": width, "num_classes": classes,
                                   "container": container})
    for width in COUNT_WIDTHS:
        model = torchvision.models.mobilenet_v2(width_mult=width)
        manifest["counts"].append({
            "width_mult": width,
            "parameters": sum(p.numel() for p in model.parameters()),
            "multiply_adds_224": multiply_adds(model, 224),
            "multiply_adds_160": multiply_adds(model, 160),
        })
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"reference data for {len(CONFIGS)} models in {out}")


if __name__ == "__main__":
    main()
