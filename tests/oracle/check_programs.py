"""Runs mnv2-train, mnv2-eval and mnv2-export as a user would and checks what
they write with the Python ecosystem (torch, torchvision, TensorBoard,
onnx, onnxruntime) as independent references.

Usage: check_programs.py CASE BIN_DIR WORK_DIR
CASE: train_eval_export | resume | signals | finetune_amp | errors | distributed
"""
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
FAILURES = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        FAILURES.append(message)


def run(args, expect=0, **kwargs):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    if expect is not None and result.returncode != expect:
        print(result.stdout[-3000:], result.stderr[-3000:])
        raise SystemExit(f"{args[0]} exited {result.returncode}, expected {expect}")
    return result


def digits(work):
    """The embedded dataset, made fresh for the test."""
    out = work / "digits"
    run([sys.executable, ROOT / "data" / "prepare_digits.py", out])
    return out


def tiny_train_args(bin_dir, data, out, epochs, extra=()):
    return [bin_dir / "mnv2-train", "--data", data, "--output", out, "--recipe", "digits",
            "--epochs", epochs, "--img-size", 16, "--val-resize", 16, "--val-crop", 16,
            "--width-mult", 0.35, "--threads", 2, "--log-interval", 5, *extra]


def torchvision_model(weights, meta):
    model = torchvision.models.mobilenet_v2(width_mult=meta["width_mult"],
                                            num_classes=meta["num_classes"])
    model.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    return model.eval()


def case_train_eval_export(bin_dir, work):
    data = digits(work)
    out = work / "run"
    run([bin_dir / "mnv2-train", "--data", data, "--output", out, "--recipe", "digits",
         "--epochs", 3, "--img-size", 32, "--val-resize", 32, "--val-crop", 32,
         "--ema", "--ema-steps", 4, "--threads", 2])
    for name in ["checkpoint.pth", "model_best.pth", "model_best.json", "metrics.jsonl",
                 "metrics.csv", "train.log", "curves.png"]:
        check((out / name).is_file(), f"train wrote {name}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    check([r["epoch"] for r in rows] == [1, 2, 3], "metrics.jsonl has epochs 1..3")
    check(all(r["ema_val_top1"] is not None for r in rows), "EMA evaluated every epoch")
    csv = (out / "metrics.csv").read_text().splitlines()
    check(len(csv) == 4 and csv[0].startswith("epoch,train_loss"), "metrics.csv header + 3 rows")

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(out))
    events.Reload()
    top1 = [e.value for e in events.Scalars("val/top1")]
    check([e.step for e in events.Scalars("val/top1")] == [1, 2, 3], "TensorBoard val/top1 steps")
    check(np.allclose(top1, [r["val_top1"] for r in rows], atol=1e-3),
          "TensorBoard val/top1 equals metrics.jsonl")
    check("train/loss" in events.Tags()["scalars"], "TensorBoard has train/loss")

    checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
    check(checkpoint["epoch"] == 3 and "model_ema" in checkpoint, "checkpoint: epoch 3 with EMA")
    check(checkpoint["model_info"]["class_names"] == [str(d) for d in range(10)],
          "checkpoint carries the class names")
    meta = json.loads((out / "model_best.json").read_text())
    model = torchvision_model(out / "model_best.pth", meta)
    check(meta["val_top1"] == max(max(r["val_top1"], r["ema_val_top1"]) for r in rows),
          "model_best is the best of raw and EMA")

    # Evaluation on images already at the crop size, so our pipeline does no
    # resampling and PIL + torchvision compute the same inputs independently.
    evalset = work / "evalset"
    labels, files = [], []
    for path in sorted((data / "val").glob("*/*.png")):
        target = evalset / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).resize((32, 32), Image.NEAREST).save(target)
        labels.append(int(path.parent.name))
        files.append(target)
    report = work / "eval" / "eval.json"
    run([bin_dir / "mnv2-eval", "--weights", out / "model_best.pth", "--data", evalset,
         "--resize-size", 32, "--crop-size", 32, "--json", report])
    ours = json.loads(report.read_text())
    with torch.no_grad():
        x = torch.stack([(torch.from_numpy(np.asarray(Image.open(f).convert("RGB"))).permute(2, 0, 1)
                          .float() / 255 - MEAN) / STD for f in files])
        logits = model(x)
    y = torch.tensor(labels)
    top1 = 100.0 * (logits.argmax(1) == y).float().mean().item()
    top5 = 100.0 * (logits.topk(5, 1).indices == y[:, None]).any(1).float().mean().item()
    loss = torch.nn.functional.cross_entropy(logits, y).item()
    confusion = np.zeros((10, 10), dtype=int)
    for t, p in zip(labels, logits.argmax(1).tolist()):
        confusion[t, p] += 1
    print(f"eval: ours top-1 {ours['top1']:.3f} top-5 {ours['top5']:.3f} loss {ours['loss']:.5f}; "
          f"torchvision top-1 {top1:.3f} top-5 {top5:.3f} loss {loss:.5f}")
    one_sample = 100.0 / len(labels) + 1e-6
    check(ours["samples"] == len(labels), "eval counted every image")
    check(abs(ours["top1"] - top1) <= one_sample and abs(ours["top5"] - top5) <= one_sample,
          "eval top-1/top-5 equal torchvision's")
    check(abs(ours["loss"] - loss) < 1e-3, "eval loss equals torchvision's")
    ours_confusion = np.array(ours["confusion"])
    check(ours_confusion.sum() == len(labels), "confusion matrix sums to the sample count")
    check(np.abs(ours_confusion - confusion).sum() <= 2, "confusion matrix equals torchvision's")
    recall = [c["recall"] for c in ours["per_class"]]
    check(np.allclose(recall, 100 * np.diag(confusion) / confusion.sum(1), atol=100 / 30),
          "per-class recall matches")
    check((report.parent / "confusion_matrix.csv").is_file()
          and (report.parent / "confusion_matrix.png").is_file(), "confusion CSV and PNG written")

    predicted = run([bin_dir / "mnv2-eval", "--weights", out / "model_best.pth", "--predict",
                     files[0], files[1], "--topk", 3, "--resize-size", 32, "--crop-size", 32]).stdout
    lines = [l.split() for l in predicted.splitlines() if l.startswith("  ")]
    check(len(lines) == 6, "predict prints top-3 for two images")
    check(int(lines[0][1]) == logits[0].argmax().item() and int(lines[3][1]) == logits[1].argmax().item(),
          "predicted classes equal torchvision's")

    x = torch.randn(3, 3, 40, 56)
    with torch.no_grad():
        reference = model(x)

    def close(actual, what):
        diff = (torch.as_tensor(actual) - reference).abs().max().item()
        rel = diff / reference.abs().max().item()
        check(rel < 1e-4, f"{what}: relative diff {rel:.2e} vs torchvision eager")

    for flags, name in [([], "model.pt"), (["--freeze"], "frozen.pt")]:
        run([bin_dir / "mnv2-export", "--weights", out / "model_best.pth", "--format", "torchscript",
             "--output", work / name, *flags])
        script = torch.jit.load(str(work / name))
        with torch.no_grad():
            close(script(x), f"TorchScript {name} in Python")
    # A TorchScript whose metadata names 5 classes of 10: the names are not
    # used, and a warning says so (they were dropped silently).
    extra = {"mnv2_metadata.json": ""}
    script = torch.jit.load(str(work / "model.pt"), _extra_files=extra)
    meta = json.loads(extra["mnv2_metadata.json"])
    meta["class_names"] = meta["class_names"][:5]
    torch.jit.save(script, str(work / "five_names.pt"),
                   _extra_files={"mnv2_metadata.json": json.dumps(meta)})
    result = run([bin_dir / "mnv2-eval", "--weights", work / "five_names.pt", "--predict",
                  next((data / "val" / "3").glob("*.png"))])
    warned = [line for line in result.stderr.splitlines() if "] warning " in line]
    check(len(warned) == 1 and "names 5 classes but the model has 10" in warned[0],
          f"TorchScript metadata naming 5 of 10 classes is warned about ({warned})")
    import onnx
    import onnxruntime
    run([bin_dir / "mnv2-export", "--weights", out / "model_best.pth", "--format", "onnx",
         "--output", work / "model.onnx"])
    onnx.checker.check_model(onnx.load(str(work / "model.onnx")), full_check=True)
    check(True, "ONNX checker (full) accepts the model")
    session = onnxruntime.InferenceSession(str(work / "model.onnx"), providers=["CPUExecutionProvider"])
    close(session.run(None, {"input": x.numpy()})[0], "ONNX in onnxruntime (dynamic batch and size)")
    run([bin_dir / "mnv2-export", "--weights", out / "checkpoint.pth", "--raw", "--format", "pth",
         "--output", work / "exported.pth"])
    exported = torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=10)
    exported.load_state_dict(torch.load(work / "exported.pth", weights_only=True))
    raw = checkpoint["model"]
    check(all(torch.equal(exported.state_dict()[k], raw[k]) for k in raw),
          "exported .pth equals the checkpoint's weights in torchvision")


def case_resume(bin_dir, work):
    data = digits(work)
    straight, resumed = work / "straight", work / "resumed"
    common = ["--deterministic", "--threads", 1, "--ema", "--ema-steps", 3]
    run(tiny_train_args(bin_dir, data, straight, 2, common))
    run(tiny_train_args(bin_dir, data, resumed, 1, common))
    run(tiny_train_args(bin_dir, data, resumed, 2,
                        common + ["--resume", resumed / "checkpoint.pth"]))
    a = torch.load(straight / "checkpoint.pth", weights_only=True)
    b = torch.load(resumed / "checkpoint.pth", weights_only=True)
    for part in ["model", "model_ema", "optimizer"]:
        same = set(a[part]) == set(b[part]) and all(torch.equal(a[part][k], b[part][k]) for k in a[part])
        check(same, f"2 epochs straight == 1 + resume + 1: identical {part}")
    check(a["global_step"] == b["global_step"], "same step count")
    lines = (resumed / "metrics.jsonl").read_text().splitlines()
    check([json.loads(l)["epoch"] for l in lines] == [1, 2], "resumed metrics continue the file")
    # README's form: the checkpoint's own configuration (recipe, width,
    # sizes, EMA, ...) with only --data, --output and a longer --epochs given.
    readme = work / "readme"
    result = run(tiny_train_args(bin_dir, data, readme, 1, common))
    # The digits recipe warms up over 2 epochs: a 1-epoch run never reaches
    # its learning rate, and says so with the rate it ends at.
    note = re.search(r"--warmup-epochs 2 is not shorter than --epochs 1: .* ends at ([0-9.e-]+), "
                     r"below --lr ([0-9.e-]+)", result.stderr)
    check(note is not None and float(note.group(1)) < float(note.group(2)),
          f"a warm-up longer than the run is noted ({note.group(0)[:100] if note else None})")
    result = run([bin_dir / "mnv2-train", "--resume", readme / "checkpoint.pth", "--data", data,
                  "--output", readme, "--epochs", 2])
    c = torch.load(readme / "checkpoint.pth", weights_only=True)
    check(all(torch.equal(a["model"][k], c["model"][k]) for k in a["model"]),
          "resume with only --data/--output/--epochs continues the run's own settings "
          "(identical to 2 epochs straight)")
    warned = [l for l in result.stderr.splitlines() if "--resume: --epochs" in l]
    check(len(warned) == 1 and "1 -> 2" in warned[0],
          f"a flag given on resume that differs from the checkpoint's is named: {warned}")

    # --overwrite replaces nothing until the new run has its first
    # checkpoint: a new run that fails in its first epoch (an undecodable
    # image under --strict-data) leaves the previous run's files as they were.
    def files(folder):
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
                if p.name != "train.log" and p.stat().st_size > 0}
    before = files(readme)
    broken = work / "broken"
    shutil.copytree(data, broken)
    (broken / "train" / "3" / "zz-broken.png").write_bytes(b"not a png")
    result = run(tiny_train_args(bin_dir, broken, readme, 1, common + ["--overwrite",
                                                                       "--strict-data"]),
                 expect=None)
    after = files(readme)
    new_events = [n for n in after if n not in before and n.startswith("events.out")]
    changed = [n for n in before if after.get(n) != before[n]]
    check(result.returncode == 1 and "zz-broken.png" in result.stderr and not changed,
          f"--overwrite with a run that fails in its first epoch changes none of the previous "
          f"run's files (exit {result.returncode}; changed: {changed})")
    run(tiny_train_args(bin_dir, data, readme, 1, common + ["--overwrite"]))
    rows = [json.loads(l)["epoch"] for l in (readme / "metrics.jsonl").read_text().splitlines()]
    events = sorted(p.name for p in readme.glob("events.out.tfevents.*"))
    check(rows == [1] and len(events) == 1 and events[0] not in before,
          f"a new run replaces the previous one's metrics ({rows}) and event files ({events})")


def wait_for(condition, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


def case_signals(bin_dir, work):
    data = digits(work)
    for sig, status in [(signal.SIGTERM, 143), (signal.SIGINT, 130)]:
        out = work / f"stopped_{status}"
        process = subprocess.Popen([str(a) for a in tiny_train_args(bin_dir, data, out, 200)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started = wait_for(lambda: (out / "metrics.jsonl").is_file()
                           and (out / "metrics.jsonl").read_text().count("\n") >= 1, 120)
        check(started, "training reached its first checkpoint")
        time.sleep(0.3)
        process.send_signal(sig)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = None
        check(code == status, f"{sig.name} ends training with exit status {status} (got {code})")
        checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
        epoch, batch = checkpoint["epoch"], checkpoint["batch_in_epoch"]
        check(epoch >= 1, f"checkpoint saved on {sig.name}: epoch {epoch}, batch {batch}")
        run(tiny_train_args(bin_dir, data, out, epoch + 1, ["--resume", out / "checkpoint.pth"]))
        after = torch.load(out / "checkpoint.pth", weights_only=True)
        check(after["epoch"] == epoch + 1 and after["batch_in_epoch"] == 0,
              "the interrupted run resumes and completes its epoch")

    # kill -9 after a finished epoch: train.log already holds every line printed,
    # and the next run removes the temporary files such a kill can leave.
    out = work / "killed"
    process = subprocess.Popen([str(a) for a in tiny_train_args(bin_dir, data, out, 200)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: (out / "metrics.jsonl").is_file()
             and (out / "metrics.jsonl").read_text().count("\n") >= 1, 120)
    time.sleep(0.3)
    process.kill()
    process.wait(timeout=60)
    check("epoch 1/200: train loss" in (out / "train.log").read_text(),
          "after kill -9, train.log holds the finished epoch's line")
    stale = [out / "checkpoint.pth.tmp-Ab12Cd", out / "metrics.jsonl.tmp-xYz789",
             out / "model_best.pth.tmp-000000"]
    for path in stale:
        path.write_bytes(b"partial")
    unrelated = out / "notes.txt.tmp-keepme"
    unrelated.write_text("not ours")
    epoch = torch.load(out / "checkpoint.pth", weights_only=True)["epoch"]
    run(tiny_train_args(bin_dir, data, out, epoch + 1, ["--resume", out / "checkpoint.pth"]))
    check(not any(path.exists() for path in stale) and unrelated.exists(),
          "the next run removes the killed run's temporary files, and only those")
    check("removed 3 temporary file(s)" in (out / "train.log").read_text(),
          "the removal is logged")


def case_finetune_amp(bin_dir, work):
    data = digits(work)
    # torchvision's own 1000-class file (an OrderedDict state_dict) as the start.
    source = torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=1000)
    torch.save(source.state_dict(), work / "imagenet_like.pth")
    out = work / "finetuned"
    result = run(tiny_train_args(bin_dir, data, out, 1,
                                 ["--pretrained", work / "imagenet_like.pth", "--freeze-features"]))
    check("mis-shaped keys (2): classifier.1.weight" in result.stderr,
          "pretrained weights loaded but the 1000-class head, reported by name")
    tuned = torch.load(out / "checkpoint.pth", weights_only=True)["model"]
    features = [k for k in source.state_dict() if k.startswith("features.")]
    changed = [k for k in features if not torch.equal(tuned[k], source.state_dict()[k])]
    check(len(features) == 312 and not changed,
          f"frozen features keep every pretrained tensor, BatchNorm statistics included "
          f"({len(changed)} of {len(features)} changed: {changed[:3]})")
    check(tuned["classifier.1.weight"].shape == (10, 1280), "a new 10-class head was trained")
    # AMP on a small subset: 16-bit types are emulated (10-25x slower) on CPUs
    # without native support, and this must stay quick on any host.
    small = work / "small"
    for split in ["train", "val"]:
        for digit_dir in sorted((data / split).iterdir()):
            (small / split / digit_dir.name).mkdir(parents=True)
            for f in sorted(digit_dir.glob("*.png"))[:8]:
                (small / split / digit_dir.name / f.name).write_bytes(f.read_bytes())
    flags = Path("/proc/cpuinfo").read_text()
    native_bf16 = " avx512_bf16" in flags or " amx_bf16" in flags
    # A run capped below AVX-512 BF16 (as the docs' AVX2-host check does) has
    # bf16 emulated like a CPU without it.
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "ALL")).upper()
    if not (isa == "ALL" or isa.startswith(("AVX512_CORE_BF16", "AVX512_CORE_FP16",
                                            "AVX512_CORE_AMX", "AVX10"))) \
            or os.environ.get("ATEN_CPU_CAPABILITY") in ("default", "avx2"):
        native_bf16 = False
    result = run(tiny_train_args(bin_dir, small, work / "amp_auto", 1, ["--amp"]))
    check(("AMP BFloat16" in result.stderr) if native_bf16 else
          ("no native bf16" in result.stderr and "AMP" not in result.stderr.split("recipe")[-1]),
          f"--amp picks bf16 only where the CPU has it natively (native: {native_bf16})")
    for dtype in ("bf16", "fp16"):
        run_dir = work / f"amp_{dtype}"
        result = run(tiny_train_args(bin_dir, small, run_dir, 2, ["--amp", "--amp-dtype", dtype]))
        native = native_bf16 if dtype == "bf16" else " avx512_fp16" in flags or " amx_fp16" in flags
        check(native or "it is emulated" in result.stderr,
              f"an emulated {dtype} request is warned about")
        rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
        check(all(math.isfinite(r["train_loss"]) for r in rows) and len(rows) == 2,
              f"AMP {dtype} training on CPU runs with finite losses")
        scale = torch.load(run_dir / "checkpoint.pth", weights_only=True)["scaler_scale"].item()
        expected = "kept at 2^16" if dtype == "bf16" else "managed"
        check(scale == 65536.0 if dtype == "bf16" else scale > 0,
              f"loss scale {scale} {expected} with {dtype}")


def case_errors(bin_dir, work):
    data = digits(work)
    train = bin_dir / "mnv2-train"
    subset = work / "two_classes"
    for digit in "01":
        (subset / digit).mkdir(parents=True, exist_ok=True)
        for f in sorted((data / "val" / digit).glob("*.png"))[:3]:
            (subset / digit / f.name).write_bytes(f.read_bytes())
    usage = [
        ([train, "--bogus"], "unknown flag"),
        ([train, "--data", data, "--output", work / "x", "--lr", "-1"], "negative lr"),
        ([train, "--data", data, "--output", work / "x", "--epochs", "abc"], "non-numeric epochs"),
        ([train, "--data", work / "nowhere", "--output", work / "x"], "missing data"),
        ([train, "--data", data, "--output", work / "x", "--recipe", "nope"], "unknown recipe"),
        ([train, "--data", data / "train", "--val-data", subset, "--output", work / "x"],
         "validation data with other classes"),
        ([bin_dir / "mnv2-eval", "--weights", work / "w.pth"], "no eval mode"),
        ([train, "--data", data, "--output", work / "x", "--device", "cuda:7"]
         if not torch.cuda.is_available() else [train, "--device", "tpu"], "unavailable device"),
        ([bin_dir / "mnv2-export", "--weights", work / "w.pth", "--format", "tflite",
          "--output", work / "m"], "unknown export format"),
    ]
    for args, what in usage:
        result = run(args, expect=None)
        one_line = len(result.stderr.strip().splitlines()) == 1
        check(result.returncode == 2 and one_line, f"usage error exits 2 with one line: {what}"
              f" (got {result.returncode}: {result.stderr.strip()[:120]})")
    # Every error says which flag or field and what it holds.
    named = [
        ([train, "--data", data, "--output", work / "x", "--epochs", "0.1"], "--epochs", "'0.1'"),
        ([train, "--data", data, "--output", work / "x", "--lr", "abc"], "--lr", "'abc'"),
        ([train, "--data", data, "--output", work / "x", "--workers", "-2"], "--workers", "[0, 1024]"),
        ([bin_dir / "mnv2-eval", "--weights", work / "w.pth", "--data", data, "--threads", "-1"],
         "--threads", "[0, 1024]"),
        ([bin_dir / "mnv2-eval", "--weights", work / "w.pth", "--data", data, "--resize-size",
          "-5"], "--resize-size", "[16, 4096]"),
    ]
    for args, flag, shown in named:
        result = run(args, expect=None)
        check(result.returncode == 2 and flag in result.stderr and shown in result.stderr
              and "failed to parse" not in result.stderr,
              f"{flag} {args[-1]}: exit 2 naming the flag ({result.stderr.strip()[:110]})")
    ten = work / "ten.pth"
    torch.save(torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=10).state_dict(), ten)
    for field, value, shown in [("img_size", "abc", '"abc"'), ("val_crop", 1e30, "1e+30"),
                                ("mean", [1, 2], "[1,2]")]:
        sidecar = {"num_classes": 10, "width_mult": 0.35, field: value}
        (work / "ten.json").write_text(json.dumps(sidecar))
        result = run([bin_dir / "mnv2-eval", "--weights", ten, "--data", data / "val"], expect=None)
        check(result.returncode == 1 and f'"{field}" must be' in result.stderr
              and shown in result.stderr and "type_error" not in result.stderr,
              f"a sidecar's {field} of {value!r}: named with its value ({result.stderr.strip()[:110]})")
    (work / "ten.json").unlink()
    run([bin_dir / "mnv2-export", "--weights", ten, "--format", "onnx", "--output",
         work / "ten.onnx", "--img-size", 32])
    result = run([bin_dir / "mnv2-eval", "--weights", work / "ten.onnx", "--data", data / "val"],
                 expect=None)
    check(result.returncode == 1 and "ONNX model" in result.stderr and "onnxruntime" in result.stderr,
          f"--weights model.onnx says what runs it ({result.stderr.strip()[:110]})")
    # A folder holding train/ and val/ (as training takes --data) is
    # evaluated on its val/, as training validates.
    report = work / "root.json"
    result = run([bin_dir / "mnv2-eval", "--weights", ten, "--data", data, "--resize-size", 32,
                  "--crop-size", 32, "--json", report])
    evaluated = json.loads(report.read_text())
    check(evaluated["samples"] == 360 and evaluated["context"]["data"].endswith("val")
          and "the val/ split of --data" in result.stderr,
          f"mnv2-eval --data on a folder with train/ and val/ evaluates val/ ({evaluated['samples']})")

    one_class = work / "one_class"
    for split in ["train", "val"]:
        (one_class / split / "7").mkdir(parents=True)
        for f in sorted((data / split / "7").glob("*.png"))[:4]:
            (one_class / split / "7" / f.name).write_bytes(f.read_bytes())
    (work / "empty").mkdir()
    refused = [
        (tiny_train_args(bin_dir, one_class, work / "y", 1), "single class"),
        (tiny_train_args(bin_dir, work / "empty", work / "y", 1), "is an empty folder"),
        (tiny_train_args(bin_dir, data, work / "y", 1,
                         ["--batch-size", 1, "--img-size", 32]), "one value per channel"),
    ]
    for args, message in refused:
        result = run(args, expect=None)
        check(result.returncode == 2 and message in result.stderr,
              f"refused with exit 2: {message} ({result.stderr.strip()[:120]})")
    blocker = work / "a_file"
    blocker.write_text("x")
    result = run(tiny_train_args(bin_dir, data, blocker / "out", 1), expect=None)
    check(result.returncode == 2 and "--output" in result.stderr,
          "unwritable output is a usage error before training")
    out = work / "diverged"
    result = run(tiny_train_args(bin_dir, data, out, 3, ["--lr", "1e12", "--clip-grad-norm", 0,
                                                          "--warmup-epochs", 0]), expect=None)
    check(result.returncode == 1 and "loss became" in result.stderr,
          f"NaN loss stops training with a clear message ({result.stderr.strip()[-100:]})")
    saved = (out / "checkpoint.pth").exists()
    truthful = "is kept" in result.stderr if saved else "no checkpoint was written yet" in result.stderr
    check(truthful, f"the NaN message says what is on disk (checkpoint saved: {saved})")
    check("loss became" in (out / "train.log").read_text(),
          "the error that stopped the run is in train.log too")
    bad = work / "corrupt.pth"
    bad.write_bytes(b"PK\x03\x04" + os.urandom(2000))
    result = run([bin_dir / "mnv2-export", "--weights", bad, "--format", "onnx",
                  "--output", work / "never.onnx"], expect=None)
    check(result.returncode == 1 and "corrupt.pth" in result.stderr
          and not (work / "never.onnx").exists(), "corrupt weights: error naming the file, no output")
    result = run([bin_dir / "mnv2-eval", "--weights", work / "missing.pth", "--data", data / "val"],
                 expect=None)
    check(result.returncode == 1 and "missing.pth" in result.stderr, "missing weights named")
    net = torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=4)
    torch.save(net.state_dict(), work / "four.pth")
    result = run([bin_dir / "mnv2-eval", "--weights", work / "four.pth", "--data", data / "val"],
                 expect=None)
    check(result.returncode == 2 and "classes" in result.stderr, "class-count mismatch is explained")
    nan = torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=4).state_dict()
    nan["features.3.conv.1.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(nan, work / "nan.pth")
    image = sorted((data / "val" / "3").glob("*.png"))[0]
    result = run([bin_dir / "mnv2-eval", "--weights", work / "nan.pth", "--predict", image],
                 expect=None)
    check(result.returncode == 1 and "features.3.conv.1.0.weight" in result.stderr
          and "NaN" in result.stderr, f"NaN weights are refused by name ({result.stderr.strip()[:90]})")
    result = run([bin_dir / "mnv2-eval", "--weights", work / "nan.pth", "--predict", image,
                  "--allow-non-finite"], expect=None)
    check(result.returncode == 0, "--allow-non-finite loads them for debugging")
    # The weights' sidecar: none is warned about with the sizes assumed; one
    # describing other weights (a stale or copied <stem>.json) is refused.
    result = run([bin_dir / "mnv2-eval", "--weights", work / "four.pth", "--predict", image])
    warned = [l for l in result.stderr.splitlines() if "four.json" in l]
    check(len(warned) == 1 and "] warning " in warned[0] and "resize 256, crop 224" in warned[0],
          f"no sidecar: one warning with the sizes assumed ({warned})")
    (work / "stale.pth").write_bytes((work / "four.pth").read_bytes())
    (work / "stale.json").write_text(json.dumps({"num_classes": 10, "val_resize": 48,
                                                 "val_crop": 48}))
    result = run([bin_dir / "mnv2-eval", "--weights", work / "stale.pth", "--predict", image],
                 expect=None)
    errors = [l for l in result.stderr.strip().splitlines() if "] warning " not in l]
    check(result.returncode == 1 and len(errors) == 1 and "stale.json' describes 10 classes"
          in errors[0] and "have 4" in errors[0],
          f"a sidecar of other weights is refused in one line ({errors})")
    finished = work / "finished"
    run(tiny_train_args(bin_dir, data, finished, 1))
    result = run(tiny_train_args(bin_dir, data, finished, 1), expect=None)
    check(result.returncode == 2 and "already holds a run" in result.stderr,
          "a finished run is not overwritten without --resume or --overwrite")
    run(tiny_train_args(bin_dir, data, finished, 1, ["--overwrite"]))
    check(len((finished / "metrics.jsonl").read_text().splitlines()) == 1,
          "--overwrite starts over")
    check_predict_folders(bin_dir, work, data)

    # A decompression bomb: 2.6 MB of PNG that is 30000x30000 pixels (2.7 GB
    # decoded) is refused from its header, within 1 GB of memory.
    bomb = work / "bomb.png"
    write_png_bomb(bomb, 30000)
    # Its peak memory, measured alone: a Python in between waits for it only.
    peak_of = [sys.executable, "-c",
               "import resource, subprocess, sys\n"
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "sys.stderr.write(r.stderr)\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(r.returncode)"]
    result = run(peak_of + [bin_dir / "mnv2-eval", "--weights", work / "four.pth",
                            "--predict", bomb], expect=None)
    peak_mb = int(result.stdout.split()[-1]) / 1024
    # four.pth has no four.json: a warning says what is assumed; the refusal
    # itself is one line.
    errors = [l for l in result.stderr.strip().splitlines() if "] warning " not in l]
    check(result.returncode == 1 and "over the budget of 178956970" in result.stderr
          and len(errors) == 1,
          f"a 30000x30000 PNG is refused in one line ({result.stderr.strip()[:140]})")
    check(peak_mb < 1024, f"... within 1 GB (peak {peak_mb:.0f} MB)")
    # A strip of 1 x 200000 pixels (under the budget, a few hundred bytes)
    # whose shorter-side resize to 256 would be 13 billion pixels (39 GB).
    strip = work / "strip.png"
    write_png_bomb(strip, 200000, 1)
    result = run(peak_of + [bin_dir / "mnv2-eval", "--weights", work / "four.pth",
                            "--predict", strip], expect=None)
    peak_mb = int(result.stdout.split()[-1]) / 1024
    errors = [l for l in result.stderr.strip().splitlines() if "] warning " not in l]
    check(result.returncode == 1 and len(errors) == 1 and "strip.png" in errors[0]
          and "1x200000 resized to a shorter side of 256 would be" in errors[0]
          and "over the budget of 178956970" in errors[0] and peak_mb < 1024,
          f"a {strip.stat().st_size}-byte 1x200000 PNG is refused in one line, peak "
          f"{peak_mb:.0f} MB ({errors})")
    # Training skips an image over the budget with a warning naming it.
    budget = work / "budget"
    shutil.copytree(subset, budget / "train")
    shutil.copytree(subset, budget / "val")
    big = Image.new("RGB", (300, 200))
    big.save(budget / "train" / "1" / "big.png")
    result = run(tiny_train_args(bin_dir, budget, work / "budget_run", 1,
                                 ["--max-image-pixels", "59999"]), expect=None)
    check(result.returncode == 0 and "big.png' has 300x200 pixels, over the budget of 59999"
          in result.stderr, "training skips an image over --max-image-pixels with a warning")
    result = run(tiny_train_args(bin_dir, budget, work / "budget_strict", 1,
                                 ["--max-image-pixels", "59999", "--strict-data"]), expect=None)
    check(result.returncode == 1 and "over the budget" in result.stderr,
          "... and stops on it with --strict-data")
    # ... and a validation image whose resize would exceed the budget (the
    # 1 x 200000 strip decodes within 300000 pixels; resized to 16 it is 51M).
    (budget / "train" / "1" / "big.png").unlink()
    shutil.copy(work / "strip.png", budget / "val" / "1" / "strip.png")
    result = run(tiny_train_args(bin_dir, budget, work / "budget_resize", 1,
                                 ["--max-image-pixels", "300000"]), expect=None)
    check(result.returncode == 0 and "strip.png" in result.stderr
          and "resized to a shorter side of 16 would be 51200000 pixels" in result.stderr,
          f"training skips a validation image whose resize exceeds the budget, naming it "
          f"(exit {result.returncode})")


def check_predict_folders(bin_dir, work, data):
    """--predict on folders: images found recursively in sorted order, other
    files skipped and counted, unreadable images skipped (an error when named
    or with --strict-data); JSON and CSV hold what a per-file run prints."""
    predict = [bin_dir / "mnv2-eval", "--weights", work / "four.pth", "--topk", 3]
    shots = work / "shots"
    (shots / "nested").mkdir(parents=True, exist_ok=True)
    picks = (sorted((data / "val" / "3").glob("*.png"))[:2]
             + sorted((data / "val" / "7").glob("*.png"))[:1])
    names = ["a.png", "nested/b.png", "nested/c.png"]
    for pick, name in zip(picks, names):
        (shots / name).write_bytes(pick.read_bytes())
    (shots / "notes.txt").write_text("not an image")
    (shots / "nested" / "broken.png").write_bytes(b"not a png at all")
    result = run(predict + ["--predict", shots, "--json", work / "shots.json",
                            "--csv", work / "shots.csv"], expect=None)
    check(result.returncode == 0 and "3 images classified; skipped 1 files that are not images "
          "and 1 unreadable images" in result.stdout and "broken.png" in result.stderr,
          f"--predict on a folder classifies its images ({result.stderr.strip()[:160]})")
    folder_run = json.loads((work / "shots.json").read_text())
    check([e["image"] for e in folder_run] == [str(shots / n) for n in names],
          "... recursively, in sorted order")
    rows = (work / "shots.csv").read_text().splitlines()
    check(rows[0] == "image,rank,class,name,probability" and len(rows) == 1 + 3 * 3
          and all(abs(float(row.split(",")[4]) - e["top"][int(row.split(",")[1]) - 1]
                      ["probability"]) < 1e-6
                  for row, e in zip(rows[1:], [e for e in folder_run for _ in range(3)])),
          "... and its CSV rows hold the JSON's top-3")
    run(predict + ["--predict", *[shots / n for n in names], "--json", work / "files.json"])
    check(json.loads((work / "files.json").read_text()) == folder_run,
          "... exactly what naming the files gives")
    result = run(predict + ["--predict", shots, "--strict-data"], expect=None)
    check(result.returncode == 1 and "broken.png" in result.stderr,
          "... and stops on the unreadable image with --strict-data")
    (work / "no_images").mkdir(exist_ok=True)
    (work / "no_images" / "readme.txt").write_text("nothing to see")
    result = run(predict + ["--predict", work / "no_images"], expect=None)
    check(result.returncode == 1 and "holds no image" in result.stderr,
          "a folder without images is an error naming it")


def write_png_bomb(path, side, height=None):
    """An RGB PNG of side x side (or side x height) black pixels, compressed
    row by row."""
    height = side if height is None else height
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + side * 3)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", side, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))


MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")


def two_ranks(args):
    return ["mpirun", "-np", 2, *args]


def rank_pids(launcher):
    """The mnv2-train processes mpirun started."""
    found = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def metrics_rows(out):
    path = out / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def start_two_ranks(args):
    process = subprocess.Popen([str(a) for a in two_ranks(args)], env=MPI_ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process


def case_distributed(bin_dir, work):
    data = digits(work)
    out = work / "two_ranks"
    result = run(two_ranks(tiny_train_args(bin_dir, data, out, 2)), env=MPI_ENV)
    rows = metrics_rows(out)
    check([r["epoch"] for r in rows] == [1, 2], "rank 0 alone writes metrics: one row per epoch")
    log = (out / "train.log").read_text()
    check(log.count("config:") == 1 and log.count("distributed: 2 processes (mpirun, mpi)") == 1,
          "one train.log, from rank 0, stating the world")
    # The first line that is not a warning: mpirun binds each rank to a core,
    # so --threads 2 is capped to 1 with a warning before it.
    first = [l for l in log.splitlines() if "] warning " not in l][0]
    check("global batch 128" in first and "lr 0.05" in first,
          f"the log's first line states world size, global batch and lr ({first[27:]})")
    check("[rank 1] info" not in result.stderr, "rank 1 prints no info lines")
    checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
    check(checkpoint["world_size"] == 2 and checkpoint["epoch"] == 2,
          "the checkpoint records its world size")

    # The epoch's distributed evaluation equals one process evaluating the same weights.
    report = work / "eval.json"
    # --engine eager: the computation training's evaluation runs, so that the
    # loss can agree to 1e-9 (the fused engine rounds differently).
    run([bin_dir / "mnv2-eval", "--weights", out / "checkpoint.pth", "--raw", "--data",
         data / "val", "--json", report, "--threads", 2, "--engine", "eager"])
    alone = json.loads(report.read_text())
    check(alone["top1"] == rows[-1]["val_top1"] and alone["top5"] == rows[-1]["val_top5"]
          and abs(alone["loss"] - rows[-1]["val_loss"]) < 1e-9 * alone["loss"],
          f"distributed val figures equal mnv2-eval's ({rows[-1]['val_top1']} / {alone['top1']})")

    # Resume across world sizes, both ways.
    run(tiny_train_args(bin_dir, data, out, 3, ["--resume", out / "checkpoint.pth"]))
    after = torch.load(out / "checkpoint.pth", weights_only=True)
    check(after["epoch"] == 3 and after["world_size"] == 1
          and [r["epoch"] for r in metrics_rows(out)] == [1, 2, 3],
          "one process resumes a 2-rank checkpoint")
    single = work / "one_rank"
    run(tiny_train_args(bin_dir, data, single, 1))
    run(two_ranks(tiny_train_args(bin_dir, data, single, 2,
                                  ["--resume", single / "checkpoint.pth"])), env=MPI_ENV)
    after = torch.load(single / "checkpoint.pth", weights_only=True)
    check(after["epoch"] == 2 and after["world_size"] == 2, "2 ranks resume a 1-process checkpoint")

    # SIGTERM to one rank: all ranks stop at the same step, rank 0 saves, all exit 143.
    out = work / "stopped"
    launcher = start_two_ranks(tiny_train_args(bin_dir, data, out, 200))
    wait_for(lambda: len(metrics_rows(out)) >= 1, 120)
    os.kill(rank_pids(launcher)[-1], signal.SIGTERM)
    try:
        code = launcher.wait(timeout=60)
    except subprocess.TimeoutExpired:
        launcher.kill()
        code = None
    check(code == 143, f"SIGTERM to one rank: the job exits 143 (got {code})")
    epoch = torch.load(out / "checkpoint.pth", weights_only=True)["epoch"]
    run(two_ranks(tiny_train_args(bin_dir, data, out, epoch + 1,
                                  ["--resume", out / "checkpoint.pth"])), env=MPI_ENV)
    check(torch.load(out / "checkpoint.pth", weights_only=True)["epoch"] == epoch + 1,
          "the stopped run resumes")

    # A rank killed outright, or one that hangs: the job ends, never waits forever.
    for how, sig in [("killed", signal.SIGKILL), ("hung", signal.SIGSTOP)]:
        out = work / how
        launcher = start_two_ranks(tiny_train_args(bin_dir, data, out, 200,
                                                   ["--dist-timeout", 5]))
        wait_for(lambda: len(metrics_rows(out)) >= 1, 120)
        pids = rank_pids(launcher)
        started = time.time()
        os.kill(pids[-1], sig)
        try:
            _, stderr = launcher.communicate(timeout=60)
            code = launcher.returncode
        except subprocess.TimeoutExpired:
            launcher.kill()
            stderr, code = "", None
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        told = ("exited on signal 9" in stderr if how == "killed"
                else "waited more than 5 s for the other ranks" in stderr)
        check(code not in (0, None) and told and time.time() - started < 30,
              f"a {how} rank ends the job with a message (exit {code} after "
              f"{time.time() - started:.0f} s)")
        intact = torch.load(out / "checkpoint.pth", weights_only=True)
        check(intact["epoch"] >= 1, f"the last checkpoint survives a {how} rank")


def case_shards(bin_dir, work):
    """WebDataset shards as a user makes and uses them: packed by
    mnv2-train --write-shards, read by webdataset, trained on in one process
    and under mpirun, evaluated exactly as the folder they came from."""
    import webdataset as wds
    data = digits(work)
    shards = work / "shards"
    result = run([bin_dir / "mnv2-train", "--data", data / "train", "--write-shards",
                  shards / "train" / "digits-%04d.tar", "--shard-max-mb", 1])
    tars = sorted((shards / "train").glob("digits-*.tar"))
    check(len(tars) == 3 and "wrote 1437 samples" in result.stderr,
          f"--write-shards packs 1437 training images into {len(tars)} shards of at most 1 MiB")
    run([bin_dir / "mnv2-train", "--data", data / "val", "--write-shards",
         shards / "val" / "digits-val-%04d.tar"])
    # The folder holding train/ and val/, as --data takes it: its train/
    # split with the 10 digit classes (not "train" and "val" as 2 classes).
    result = run([bin_dir / "mnv2-train", "--data", data, "--write-shards",
                  shards / "root" / "digits-%04d.tar"])
    classes = (shards / "root" / "classes.txt").read_text().split()
    check(classes == [str(d) for d in range(10)] and "wrote 1437 samples" in result.stderr,
          f"--write-shards from a folder with train/ and val/ packs train/ ({classes[:3]}...)")
    samples = list(wds.WebDataset([str(t) for t in tars], shardshuffle=False, empty_check=False))
    check(len(samples) == 1437 and all(set(x) >= {"png", "cls"} for x in samples),
          "webdataset reads every sample back (png + cls)")

    pattern = str(shards / "train" / "digits-{0000..0002}.tar")
    out = work / "run"
    result = run(tiny_train_args(bin_dir, pattern, out, 2, ["--val-data", shards / "val"]))
    rows = metrics_rows(out)
    check([r["epoch"] for r in rows] == [1, 2] and "1437 training images in" in result.stderr
          and "(3 shards)" in result.stderr, "mnv2-train trains from a brace pattern of shards")

    # mnv2-eval reads shards: the same figures as the folder they came from.
    figures = []
    for val in (shards / "val", data / "val"):
        report = work / f"eval-{len(figures)}.json"
        run([bin_dir / "mnv2-eval", "--weights", out / "checkpoint.pth", "--data", val,
             "--json", report, "--threads", 2])
        figures.append(json.loads(report.read_text()))
    check(all(figures[0][k] == figures[1][k] for k in ("samples", "top1", "top5", "loss")),
          f"mnv2-eval on shards equals the folder ({figures[0]['top1']} / {figures[1]['top1']})")

    # Stopped mid-epoch by SIGINT and resumed: the stream is re-read up to the
    # step the checkpoint recorded, so the weights equal an uninterrupted run's.
    common = ["--val-data", shards / "val", "--deterministic", "--threads", 1,
              "--shuffle-buffer", 300, "--log-interval", 1]
    straight, stopped = work / "straight", work / "stopped"
    run(tiny_train_args(bin_dir, pattern, straight, 3, common))
    process = subprocess.Popen([str(a) for a in tiny_train_args(bin_dir, pattern, stopped, 3,
                                                                 common)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: len(metrics_rows(stopped)) >= 1, 120)
    time.sleep(0.4)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=60)
    where = torch.load(stopped / "checkpoint.pth", weights_only=True)
    check(code == 130 and where["batch_in_epoch"] > 0,
          f"SIGINT stopped training from shards mid-epoch (epoch {where['epoch']}, "
          f"step {where['batch_in_epoch']}; exit {code})")
    run(tiny_train_args(bin_dir, pattern, stopped, 3,
                        common + ["--resume", stopped / "checkpoint.pth"]))
    a = torch.load(straight / "checkpoint.pth", weights_only=True)
    b = torch.load(stopped / "checkpoint.pth", weights_only=True)
    check(all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
          and a["global_step"] == b["global_step"],
          "stopped mid-epoch and resumed == uninterrupted: identical weights")

    # Two ranks, each reading its own shards.
    two = work / "two_ranks"
    result = run(two_ranks(tiny_train_args(bin_dir, shards / "train", two, 1,
                                           ["--val-data", shards / "val"])), env=MPI_ENV)
    check([r["epoch"] for r in metrics_rows(two)] == [1],
          "mnv2-train under mpirun -np 2 trains from a folder of shards")

    # A shard whose 120 samples sit among 40,000 stray members (samples with
    # no image): each epoch reads it in linear time (the loader looked every
    # skip up in a list of them all: 17 s for one epoch at 60,000), and the
    # log names the first few skips and counts the rest.
    strays = work / "strays"
    strays.mkdir()
    write_shard_with_strays(tars[0], strays / "strays.tar", samples=120, strays=40000)
    shutil.copy(shards / "train" / "classes.txt", strays)
    result = run(tiny_train_args(bin_dir, strays, work / "strays_run", 2,
                                 ["--val-data", shards / "val"]))
    warnings = [line for line in result.stderr.splitlines()
                if "] warning " in line and "strays.tar" in line]
    check(len(warnings) == 4 and "40000 problems in all" in warnings[-1]
          and "120 complete samples" in warnings[-1],
          f"40,000 stray members: {len(warnings)} warning lines, the last counting them "
          f"({warnings[-1][-90:] if warnings else ''})")

    # Labels that name no class: -1, abc and 15 (classes.txt names 10) are
    # each a sample skipped with a warning (15 stopped the run).
    relabelled = work / "relabelled"
    relabelled.mkdir()
    write_shard_relabelled(tars[0], relabelled / "r.tar", samples=100,
                           labels=[b"-1", b"abc", b"15"])
    shutil.copy(shards / "train" / "classes.txt", relabelled)
    result = run(tiny_train_args(bin_dir, relabelled, work / "relabelled_run", 1,
                                 ["--val-data", shards / "val"]), expect=None)
    warnings = [line for line in result.stderr.splitlines()
                if "] warning " in line and "r.tar" in line]
    check(result.returncode == 0 and "97 training images" in result.stderr
          and len(warnings) == 3 and "label 15 is beyond the 10 classes" in warnings[2]
          and all("unreadable" in w for w in warnings[:2]),
          f"labels -1, abc and 15 of 10 classes: 3 samples skipped alike (exit "
          f"{result.returncode}: {[w[-60:] for w in warnings]})")

    # Mistakes: one line each.
    result = run(tiny_train_args(bin_dir, str(shards / "train" / "digits-{0000..0005}.tar"),
                                 work / "bad", 1, ["--val-data", shards / "val"]), expect=None)
    check(result.returncode != 0 and "digits-0003.tar" in result.stderr
          and "does not exist" in result.stderr and "Traceback" not in result.stderr,
          "a pattern naming a missing shard is refused, naming it")
    result = run(tiny_train_args(bin_dir, pattern, work / "bad", 1), expect=None)
    check(result.returncode == 2 and "--val-data" in result.stderr,
          "shards without --val-data: a usage error saying so")
    result = run([bin_dir / "mnv2-train", "--data", data / "val", "--write-shards",
                  shards / "val" / "digits-val-%04d.tar"], expect=None)
    check(result.returncode == 2 and "--overwrite" in result.stderr,
          "--write-shards does not replace existing shards without --overwrite")
    result = run([bin_dir / "mnv2-train", "--data", data / "val", "--write-shards",
                  shards / "val.tar"], expect=None)
    check(result.returncode == 2 and "integer field" in result.stderr,
          "--write-shards without a number field is a usage error")
    (shards / "cut").mkdir()
    (shards / "cut" / "cut.tar").write_bytes(tars[0].read_bytes()[:300000])
    result = run(tiny_train_args(bin_dir, shards / "cut", work / "cut", 1,
                                 ["--val-data", shards / "val", "--strict-data"]), expect=None)
    check(result.returncode == 1 and "cut.tar" in result.stderr and "truncated" in result.stderr,
          "--strict-data: a truncated shard stops training, naming it")


def write_shard_with_strays(source, path, samples, strays):
    """A shard holding `samples` samples of `source` followed by `strays`
    one-byte members that are samples without an image."""
    import io
    import tarfile
    with tarfile.open(source) as tar, tarfile.open(path, "w") as out:
        members = [m for m in tar.getmembers() if m.isfile()][:2 * samples]
        for member in members:
            out.addfile(member, tar.extractfile(member))
        for i in range(strays):
            info = tarfile.TarInfo(f"stray{i:06d}.txt")
            info.size = 1
            out.addfile(info, io.BytesIO(b"x"))


def write_shard_relabelled(source, path, samples, labels):
    """The first `samples` samples of `source`, the first len(labels) of them
    with their .cls member replaced by the given bytes."""
    import io
    import tarfile
    with tarfile.open(source) as tar, tarfile.open(path, "w") as out:
        members = [m for m in tar.getmembers() if m.isfile()][:2 * samples]
        keys = sorted({m.name.split(".")[0] for m in members})[:len(labels)]
        for member in members:
            data = tar.extractfile(member).read()
            key, ext = member.name.split(".", 1)
            if ext == "cls" and key in keys:
                data = labels[keys.index(key)]
                member.size = len(data)
            out.addfile(member, io.BytesIO(data))


def case_benchmark_dtypes(bin_dir, work):
    """mnv2-eval --benchmark measures only the dtypes the CPU runs natively
    unless told; ONEDNN_MAX_CPU_ISA=AVX2 makes any CPU one without bf16."""
    weights = work / "small.pth"
    torch.save(torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=10).state_dict(), weights)
    bench = [bin_dir / "mnv2-eval", "--weights", weights, "--benchmark", "--img-size", 32,
             "--batch-size", 2, "--iterations", 2, "--threads", 2]
    capped = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2")
    for env, dtypes, told in [(capped, [], True), (capped, ["--dtypes", "fp32,bf16"], False)]:
        report = work / f"bench{len(dtypes)}.json"
        result = run([*bench, *dtypes, "--json", report], env=env)
        rows = json.loads(report.read_text())["cases"]
        measured = sorted({(r["dtype"], r["emulated"]) for r in rows})
        wanted = sorted([("fp32", False)] + ([] if told else [("bf16", True)]))
        check(measured == wanted, f"benchmark {' '.join(dtypes) or 'by default'} without native bf16: {measured}")
        check(("skipped bf16" in result.stdout) == told,
              f"the skip is {'told' if told else 'silent when bf16 is named'}")
    # Without --img-size, the weights' own evaluation size (a 48-pixel
    # digits model was benchmarked at 224).
    meta = {"num_classes": 10, "width_mult": 0.35, "img_size": 48, "val_resize": 48,
            "val_crop": 48}
    (work / "small.json").write_text(json.dumps(meta))
    report = work / "own_size.json"
    result = run([bin_dir / "mnv2-eval", "--weights", weights, "--benchmark", "--batch-size", 2,
                  "--iterations", 2, "--threads", 2, "--dtypes", "fp32", "--json", report])
    check(json.loads(report.read_text())["img_size"] == 48 and "48x48" in result.stdout,
          "--benchmark without --img-size measures at the weights' evaluation size (48)")
    (work / "small.json").unlink()
    # --threads beyond the cores: capped with a warning (1024 threads on 2
    # cores ran three training steps in 120 s).
    result = run([bin_dir / "mnv2-eval", "--weights", weights, "--benchmark", "--img-size", 32,
                  "--batch-size", 2, "--iterations", 2, "--threads", 1024, "--dtypes", "fp32"])
    capped = re.search(r"--threads 1024 is more than the (\d+) cores .*: using (\d+)", result.stderr)
    check(capped is not None and capped.group(1) == capped.group(2)
          and f", {capped.group(2)} threads," in result.stdout,
          f"--threads 1024 is capped at the cores, with a warning ({result.stderr.strip()[:120]})")
    # LibTorch's oneDNN Graph engine in the program that also loads the oneDNN
    # add-on's library (it aborted when that library was loaded first).
    report = work / "graph.json"
    result = run([*bench, "--engine", "graph", "--dtypes", "fp32", "--json", report], expect=None)
    engines = {r["engine"] for r in json.loads(report.read_text())["cases"]} if result.returncode == 0 else set()
    check(engines == {"graph"}, f"the oneDNN Graph engine runs beside the add-on (exit {result.returncode})")


def main():
    case, bin_dir, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    torch.set_num_threads(2)
    globals()[f"case_{case}"](bin_dir, work)
    print(f"{case}: {len(FAILURES)} failed")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
