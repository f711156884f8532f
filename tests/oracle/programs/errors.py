"""Bad input as users and hostile files give it: one line, the right exit
status, nothing partial left, memory bounded."""
import json
import os
import shutil
import sys

import torch
import torchvision
from PIL import Image

from programs.common import check, run, digits, tiny_train_args, write_png_bomb


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
        ([bin_dir / "mnv2-export", "--weights", work / "w.pth", "--format", "coreml",
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
