"""What the program checks share: running a program, recording a check,
the embedded dataset, two ranks under mpirun."""
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parents[3]


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


def wait_for(condition, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


def metrics_rows(out):
    path = out / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


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


def start_two_ranks(args):
    process = subprocess.Popen([str(a) for a in two_ranks(args)], env=MPI_ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process
