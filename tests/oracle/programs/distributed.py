"""mnv2-train under mpirun with two ranks."""
import json
import os
import signal
import subprocess
import time

import torch

from programs.common import check, run, digits, tiny_train_args, wait_for, metrics_rows, MPI_ENV, two_ranks, rank_pids, start_two_ranks


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
    # --engine eager: the computation training's evaluation runs (the fused
    # engine rounds differently). Each rank evaluates its share of the images,
    # in batches oneDNN may round differently from one process's: on an AMX Xeon the
    # loss differed by 2.3e-9 and 3.4e-9 relative, with our kernels and with
    # LibTorch's alone; float logits round at about 6e-8.
    run([bin_dir / "mnv2-eval", "--weights", out / "checkpoint.pth", "--raw", "--data",
         data / "val", "--json", report, "--threads", 2, "--engine", "eager"])
    alone = json.loads(report.read_text())
    check(alone["top1"] == rows[-1]["val_top1"] and alone["top5"] == rows[-1]["val_top5"]
          and abs(alone["loss"] - rows[-1]["val_loss"]) < 1e-7 * alone["loss"],
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
