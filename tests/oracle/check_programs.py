"""Runs mnv2-train, mnv2-eval and mnv2-export as a user would and checks what
they write with the Python ecosystem (torch, torchvision, TensorBoard,
onnx, onnxruntime) as independent references.

Usage: check_programs.py CASE BIN_DIR WORK_DIR
CASE: a case_<name> of the modules in programs/: train_eval_export, resume,
signals, finetune_amp (training.py), errors (errors.py), distributed,
shards, benchmark_dtypes, int8_gate, qat.
"""
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from programs import benchmark, distributed, errors, int8_gate, qat, shards, training  # noqa: E402
from programs.common import FAILURES  # noqa: E402

CASES = {name[len("case_"):]: function
         for module in (training, errors, distributed, shards, benchmark, int8_gate, qat)
         for name, function in vars(module).items() if name.startswith("case_")}


def main():
    case, bin_dir, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    torch.set_num_threads(2)
    CASES[case](bin_dir, work)
    print(f"{case}: {len(FAILURES)} failed")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
