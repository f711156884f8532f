"""WebDataset shards packed, read, trained on and evaluated, and crafted
shards (stray members, labels that name no class)."""
import json
import math
import re
import shutil
import signal
import subprocess

import torch

from programs.common import check, run, digits, tiny_train_args, metrics_rows, MPI_ENV, two_ranks


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
    # The shards hold the samples in another order, so the batches differ. Where
    # oneDNN runs its AVX2 kernels a sample's logits then move in the last bits
    # with its place in the batch: the mean loss agrees to float rounding.
    check(all(figures[0][k] == figures[1][k] for k in ("samples", "top1", "top5"))
          and math.isclose(figures[0]["loss"], figures[1]["loss"], rel_tol=1e-6),
          "mnv2-eval on shards equals the folder "
          f"(top-1 {figures[0]['top1']} / {figures[1]['top1']}, "
          f"loss {figures[0]['loss']} / {figures[1]['loss']})")

    # Stopped mid-epoch by SIGINT and resumed: the stream is re-read up to the
    # step the checkpoint recorded, so the weights equal an uninterrupted run's.
    common = ["--val-data", shards / "val", "--deterministic", "--threads", 1,
              "--shuffle-buffer", 300, "--log-interval", 1]
    straight, stopped = work / "straight", work / "stopped"
    run(tiny_train_args(bin_dir, pattern, straight, 3, common))
    process = subprocess.Popen([str(a) for a in tiny_train_args(bin_dir, pattern, stopped, 3,
                                                                 common)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # SIGINT once the second epoch has logged two of its 22 steps: mid-epoch
    # at any machine speed. A fixed delay after the first epoch's metrics
    # once landed on the epoch boundary (a bare-machine run, 2026-12-03).
    for line in process.stdout:
        step = re.search(r"epoch 2/3 (\d+)/", line)
        if step and int(step.group(1)) >= 2:
            break
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    code = process.returncode
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
