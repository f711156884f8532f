"""Test oracle: checks the .pth files our C++ code wrote, with Python torch.

Each `<name>.pth` in WRITTEN_DIR must load with `torch.load(weights_only=True)`
into torchvision's mobilenet_v2 strictly; `<name>_io.pth` beside it holds an
input and the output our C++ model gave, which torchvision must reproduce.
When REFERENCE_DIR has a `<name>.pth` too, every tensor must be bit-identical.
Usage: check_written.py WRITTEN_DIR REFERENCE_DIR
"""
import sys
from pathlib import Path

import torch
import torchvision


def main():
    written, reference = Path(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(1)
    names = sorted(p.stem for p in written.glob("*.pth") if not p.stem.endswith("_io"))
    if not names:
        sys.exit(f"no written weights in {written}")
    failures = 0
    for name in names:
        state = torch.load(written / f"{name}.pth", weights_only=True)
        classes, last = state["classifier.1.weight"].shape
        width = float((written / f"{name}.width").read_text())
        model = torchvision.models.mobilenet_v2(width_mult=width, num_classes=classes)
        model.load_state_dict(state, strict=True)
        model.eval()
        io = torch.load(written / f"{name}_io.pth", weights_only=True)
        with torch.no_grad():
            out = model(io["input"])
        diff = (out - io["output"]).abs().max().item()
        scale = io["output"].abs().max().item()
        ok = diff <= 1e-5 * max(scale, 1e-12)
        original = reference / f"{name}.pth"
        identical = "n/a"
        if original.exists():
            ref_state = torch.load(original, weights_only=True)
            identical = all(torch.equal(ref_state[k], state[k]) for k in ref_state) and \
                set(ref_state) == set(state)
            ok = ok and identical
        print(f"{name}: width {width} classes {classes}: max abs diff {diff:.3g} "
              f"(max |y| {scale:.3g}), bit-identical to reference: {identical}: "
              f"{'ok' if ok else 'FAIL'}")
        failures += not ok
    print(f"{len(names) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
