"""mnv2-export --format int8's accuracy gate (--validation-data,
--max-top1-drop) on a digits checkpoint: its top-1 figures against
mnv2-eval's own evaluation of both files, the stem's SQNR against one
computed here from torchvision and the int8 file's codes, a refused file that
leaves the previous one as it was, and the bad inputs."""
import json

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .common import MEAN, STD, check, digits, run, torchvision_model

SIZE = 32


def top1_of(bin_dir, weights, data):
    out = run([bin_dir / "mnv2-eval", "--weights", weights, "--data", data]).stdout
    return float(out.split("top-1 ")[1].split("%")[0])


def resized_copy(folder, out):
    """The images at the model's input size, so that the evaluation's resize
    and crop are the identity and Python reads the same pixels."""
    for path in sorted(folder.glob("*/*.png")):
        (out / path.parent.name).mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR).save(
            out / path.parent.name / path.name)
    return out


def stem_sqnr(weights, meta, int8_file, images):
    """features.0.conv0's output SQNR (dB): torchvision's fp32 stem against
    the int8 file's stem computed from its codes, steps and bias."""
    model = torchvision_model(weights, meta)
    with torch.no_grad():
        reference = model.features[0](images).double()
    state = torch.load(int8_file, weights_only=True)
    step = state["quantization.input_scale"].double()
    codes = torch.clamp(torch.round(images.double() / step), -128, 127)
    _, stride, padding, _, groups, _ = state["convs.0.geometry"].tolist()
    y = (F.conv2d(codes, state["convs.0.codes"].double(), None, stride, padding, 1, groups)
         * (state["convs.0.weight_scale"].double() * step).view(1, -1, 1, 1)
         + state["convs.0.bias"].double().view(1, -1, 1, 1)).clamp(0, 6)
    out_step = state["convs.0.output_scale"].double()
    q = torch.clamp(torch.round(y / out_step), 0, 255) * out_step
    return float(10 * torch.log10(reference.square().sum() / (reference - q).square().sum()))


def case_int8_gate(bin_dir, work):
    data = digits(work)
    run_dir = work / "run"
    run([bin_dir / "mnv2-train", "--data", data, "--output", run_dir, "--recipe", "digits",
         "--epochs", 6, "--img-size", SIZE, "--val-resize", SIZE, "--val-crop", SIZE,
         "--width-mult", 0.5, "--threads", 2])
    weights = run_dir / "model_best.pth"
    meta = json.loads((run_dir / "model_best.json").read_text())
    val = resized_copy(data / "val", work / "val")
    out = work / "digits_int8.pth"
    export = [bin_dir / "mnv2-export", "--weights", weights, "--format", "int8",
              "--calibration-data", data / "train"]
    printed = run(export + ["--validation-data", val, "--max-top1-drop", 5,
                            "--output", out]).stdout
    print(printed)
    fp32_top1, int8_top1 = top1_of(bin_dir, weights, val), top1_of(bin_dir, out, val)
    line = [x for x in printed.splitlines() if x.startswith("validation")][0]
    check(f"top-1 fp32 {fp32_top1:.2f}%, int8 {int8_top1:.2f}%" in line,
          f"the gate's figures are mnv2-eval's ({fp32_top1:.2f}%, {int8_top1:.2f}%): {line}")
    report = json.loads(out.with_suffix(".json").read_text())["quantization"]["validation"]
    layers = report["layer_sqnr_db"]
    check(report["images"] == 360 and len(layers) == 52
          and all(10 < v < 80 for v in layers.values()),
          f"the sidecar holds the figures and 52 layers' SQNR ({min(layers.values()):.1f} to "
          f"{max(layers.values()):.1f} dB)")
    # The first batch (--calibration-batch, default 32) in the loader's
    # order: class folders, then files, sorted.
    paths = sorted(val.glob("*/*.png"))[:32]
    images = torch.stack([
        (torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1).float() / 255 - MEAN) / STD
        for p in paths])
    ours = layers["features.0.conv0 (3x3, ReLU6)"]
    oracle = stem_sqnr(weights, meta, out, images)
    check(abs(ours - oracle) < 0.05, f"the stem's SQNR {ours:.3f} dB, computed here {oracle:.3f}")

    # Ranges at the 1st percentile of each activation clip nearly everything,
    # on any host: the gate refuses the file and the previous one stays as
    # it was.
    before = out.read_bytes(), out.with_suffix(".json").read_bytes()
    refused = run(export + ["--calibration-method", "percentile", "--percentile", 1,
                            "--validation-data", val, "--max-top1-drop", 1,
                            "--output", out], expect=1)
    errors = [x for x in refused.stderr.splitlines() if x and "warning" not in x]
    check(len(errors) == 1 and "more than --max-top1-drop 1; nothing written" in errors[0]
          and (out.read_bytes(), out.with_suffix(".json").read_bytes()) == before
          and not list(work.glob(".*staging*")),
          f"a file that loses too much is refused, the previous one kept: {errors}")

    flat = work / "flat"
    flat.mkdir()
    Image.new("RGB", (SIZE, SIZE)).save(flat / "image.png")
    for extra, text, what in [
            (["--validation-data", flat], "has no class folders",
             "a gate folder without labels"),
            (["--validation-data", val, "--max-top1-drop", 150],
             "--max-top1-drop must be in [0, 100]", "--max-top1-drop out of range"),
            (["--max-top1-drop", 1], "--max-top1-drop needs --validation-data",
             "--max-top1-drop alone")]:
        target = work / "refused.pth"
        result = run(export + extra + ["--output", target], expect=2)
        lines = [x for x in result.stderr.splitlines() if x and "warning" not in x]
        check(len(lines) == 1 and text in lines[0] and not target.exists()
              and not list(work.glob(".*staging*")), f"{what}: {lines}")
