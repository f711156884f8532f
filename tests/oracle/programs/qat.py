"""mnv2-train --qat on a digits checkpoint and mnv2-export --format int8 from
its checkpoint without calibration data: the int8 file's steps against the
checkpoint's ranges (range / 255 after ReLU6, / 127 otherwise, computed here
with torch.load), the oneDNN int8 engine (mnv2-eval) against the run's own
fake-quantized validation (its last epoch's loss and top-1), resume, and the
bad inputs."""
import csv
import json

import torch

from .common import MPI_ENV, check, digits, run, two_ranks

SIZE = 32


def eval_figures(bin_dir, weights, data, work):
    report = work / "eval.json"
    run([bin_dir / "mnv2-eval", "--weights", weights, "--data", data, "--json", report])
    figures = json.loads(report.read_text())
    return figures["top1"], figures["loss"]


def last_epoch(run_dir):
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return rows[-1]


def case_qat(bin_dir, work):
    data = digits(work)
    size = ["--img-size", SIZE, "--val-resize", SIZE, "--val-crop", SIZE, "--threads", 2]
    fp32_dir, qat_dir = work / "fp32", work / "qat"
    run([bin_dir / "mnv2-train", "--data", data, "--output", fp32_dir, "--recipe", "digits",
         "--epochs", 4, "--width-mult", 0.5, *size])
    qat = [bin_dir / "mnv2-train", "--data", data, "--output", qat_dir, "--recipe", "digits",
           "--pretrained", fp32_dir / "checkpoint.pth", "--qat", "--lr", 0.005,
           "--warmup-epochs", 0, *size]
    log = run(qat + ["--epochs", 2]).stderr
    check("quantization-aware training" in log, "the run says it trains quantization-aware")
    # Resumed for a third epoch: the ranges come back with the weights.
    run(qat + ["--epochs", 3, "--resume", qat_dir / "checkpoint.pth"])
    checkpoint = torch.load(qat_dir / "checkpoint.pth", weights_only=True)
    ranges = checkpoint["qat_ranges"]
    check(ranges.numel() == 53 and bool((ranges > 0).all())
          and checkpoint["qat_input_scale"] > 0,
          f"the checkpoint holds 52 activations' and the logits' ranges ({ranges.numel()})")

    # Two ranks: the step under DDP's Reducer, validation with rank 0's ranges.
    ddp_dir = work / "qat_ddp"
    result = run(two_ranks([*qat[:4], ddp_dir, *qat[5:-2], "--epochs", 1, "--threads", 1]),
                 env=MPI_ENV)
    ddp_ranges = torch.load(ddp_dir / "checkpoint.pth", weights_only=True)["qat_ranges"]
    check(ddp_ranges.numel() == 53 and bool((ddp_ranges > 0).all())
          and "Grad strides do not match" not in result.stderr,
          "two ranks train quantization-aware, the Reducer taking every gradient as it is")

    out = work / "qat_int8.pth"
    printed = run([bin_dir / "mnv2-export", "--weights", qat_dir / "checkpoint.pth",
                   "--format", "int8", "--output", out]).stdout
    check("the ranges of quantization-aware training" in printed,
          "exported without calibration data")
    state = torch.load(out, weights_only=True)
    relu6 = [bool(state[f"convs.{n}.geometry"][5]) for n in range(52)]
    expected = [float(torch.tensor(r / (255.0 if a else 127.0), dtype=torch.float32))
                for r, a in zip(ranges[:52].tolist(), relu6)]
    steps = [float(state[f"convs.{n}.output_scale"]) for n in range(52)]
    check(steps == expected, "each activation's step is its trained range / 255 after ReLU6, "
          "else / 127")
    check(abs(float(state["quantization.input_scale"]) - checkpoint["qat_input_scale"]) < 1e-9,
          "the input's step is the run's")

    # The run validated with the int8 arithmetic: the engine reproduces it.
    row = last_epoch(qat_dir)
    top1, loss = eval_figures(bin_dir, out, data / "val", work)
    # (metrics.csv keeps 8 significant digits.)
    check(abs(top1 - float(row["val_top1"])) < 1e-4 and abs(loss - float(row["val_loss"])) < 1e-6,
          f"mnv2-eval on the int8 file: top-1 {top1:.4f}%, loss {loss:.7f}; the QAT run's last "
          f"validation: {float(row['val_top1']):.4f}%, {float(row['val_loss']):.7f}")
    fp32_top1, _ = eval_figures(bin_dir, fp32_dir / "model_best.pth", data / "val", work)
    print(f"digits at {SIZE} px, width 0.5: fp32 {fp32_top1:.2f}%, QAT int8 {top1:.2f}%")

    for extra, text, what in [
            (["--epochs", 1, "--output", work / "a"], "--qat fine-tunes trained weights",
             "--qat without --pretrained"),
            (["--epochs", 1, "--pretrained", fp32_dir / "checkpoint.pth", "--amp",
              "--output", work / "b"], "--qat computes in fp32", "--qat with --amp"),
            (["--epochs", 1, "--pretrained", fp32_dir / "metrics.csv", "--output", work / "c"],
             "metrics.csv", "--qat on a file that is not MobileNetV2 weights")]:
        result = run([bin_dir / "mnv2-train", "--data", data, "--qat", *size, *extra],
                     expect=None)
        lines = [x for x in result.stderr.splitlines() if x and "warning" not in x
                 and " info " not in x]
        check(result.returncode != 0 and len(lines) == 1 and text in lines[0],
              f"{what}: exit {result.returncode}, {lines}")
    result = run([bin_dir / "mnv2-export", "--weights", fp32_dir / "checkpoint.pth",
                  "--format", "int8", "--output", work / "d.pth"], expect=2)
    check("needs --calibration-data" in result.stderr and not (work / "d.pth").exists(),
          "int8 from float weights still needs calibration images")
