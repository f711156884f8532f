"""mnv2-train, mnv2-eval and mnv2-export on the embedded digits: a run and its
exports against torchvision/onnxruntime, resume, signals, fine-tuning and AMP."""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from programs.common import MEAN, STD, check, run, digits, tiny_train_args, torchvision_model, wait_for


def case_train_eval_export(bin_dir, work):
    data = digits(work)
    out = work / "run"
    run([bin_dir / "mnv2-train", "--data", data, "--output", out, "--recipe", "digits",
         "--epochs", 3, "--img-size", 32, "--val-resize", 32, "--val-crop", 32,
         "--ema", "--ema-steps", 4, "--threads", 2])
    for name in ["checkpoint.pth", "model_best.pth", "model_best.json", "metrics.jsonl",
                 "metrics.csv", "train.log", "curves.png"]:
        check((out / name).is_file(), f"train wrote {name}")
    with Image.open(out / "curves.png") as plot:
        plot.load()
        check(plot.format == "PNG" and plot.size == (1040, 360),
              f"curves.png decodes as a 1040x360 PNG ({plot.format}, {plot.size})")
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
    changed = [n for n in before if after.get(n) != before[n]]
    check(result.returncode == 1 and "zz-broken.png" in result.stderr and not changed,
          f"--overwrite with a run that fails in its first epoch changes none of the previous "
          f"run's files (exit {result.returncode}; changed: {changed})")
    run(tiny_train_args(bin_dir, data, readme, 1, common + ["--overwrite"]))
    rows = [json.loads(l)["epoch"] for l in (readme / "metrics.jsonl").read_text().splitlines()]
    events = sorted(p.name for p in readme.glob("events.out.tfevents.*"))
    check(rows == [1] and len(events) == 1 and events[0] not in before,
          f"a new run replaces the previous one's metrics ({rows}) and event files ({events})")


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
    # The kill itself may land mid-save and leave one of its own.
    leftovers = [p for p in out.glob("*.tmp-*") if p != unrelated]
    epoch = torch.load(out / "checkpoint.pth", weights_only=True)["epoch"]
    run(tiny_train_args(bin_dir, data, out, epoch + 1, ["--resume", out / "checkpoint.pth"]))
    check(not any(path.exists() for path in leftovers) and unrelated.exists(),
          "the next run removes the killed run's temporary files, and only those")
    logged = [l for l in (out / "train.log").read_text().splitlines() if "temporary file" in l]
    check(len(logged) == 1 and f"removed {len(leftovers)} temporary file(s)" in logged[0],
          f"the removal of {len(leftovers)} files is logged: {logged}")


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
    # Intel's AVX-512 BF16 without AMX (or with AMX capped off) trains bf16
    # slower than fp32, so --amp keeps fp32 there.
    intel = "GenuineIntel" in flags
    amx = " amx_bf16" in flags and (isa == "ALL" or "AMX" in isa)
    result = run(tiny_train_args(bin_dir, small, work / "amp_auto", 1, ["--amp"]))
    fp32_run = "AMP" not in result.stderr.split("recipe")[-1]
    if native_bf16 and (amx or not intel):
        check("AMP BFloat16" in result.stderr,
              "--amp picks bf16 where the CPU trains it faster (AMX, or not Intel's)")
    elif native_bf16:
        check("without AMX" in result.stderr and fp32_run,
              "--amp keeps fp32, with a warning, on Intel's AVX-512 BF16 without AMX")
    else:
        check("no native bf16" in result.stderr and fp32_run,
              "--amp keeps fp32, with a warning, where bf16 would be emulated")
    for dtype in ("bf16", "fp16"):
        run_dir = work / f"amp_{dtype}"
        result = run(tiny_train_args(bin_dir, small, run_dir, 2, ["--amp", "--amp-dtype", dtype]))
        native = native_bf16 if dtype == "bf16" else " avx512_fp16" in flags or " amx_fp16" in flags
        check(native or "it is emulated" in result.stderr,
              f"an emulated {dtype} request is warned about")
        if dtype == "bf16" and native and intel and not amx:
            check("runs slower than fp32" in result.stderr and "AMP BFloat16" in result.stderr,
                  "a bf16 request on Intel's AVX-512 BF16 without AMX is kept, with its cost told")
        rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
        check(all(math.isfinite(r["train_loss"]) for r in rows) and len(rows) == 2,
              f"AMP {dtype} training on CPU runs with finite losses")
        scale = torch.load(run_dir / "checkpoint.pth", weights_only=True)["scaler_scale"].item()
        expected = "kept at 2^16" if dtype == "bf16" else "managed"
        check(scale == 65536.0 if dtype == "bf16" else scale > 0,
              f"loss scale {scale} {expected} with {dtype}")
