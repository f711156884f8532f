"""mnv2-eval --benchmark: dtypes, sizes and thread caps."""
import json
import os
import re

import torch
import torchvision

from programs.common import check, run


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
