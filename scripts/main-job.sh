#!/usr/bin/env bash
# The main job on the embedded default data (scikit-learn's handwritten
# digits): set up, then train, evaluate and export MobileNetV2.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
bin=${MNV2_BUILD_DIR:-$root/build}/apps
out=${MNV2_RUN_DIR:-$root/runs/digits}
# --overwrite: the main job starts over each time it is run.
train=("$bin/mnv2-train" --data "$root/data/digits" --output "$out" --recipe digits --overwrite)
# On two cores or more, two ranks of one thread each (the trainer's data
# parallelism; batch 32 per rank, the recipe's 64 in all): at 48x48 one
# process's two OpenMP threads wait on each other for much of each step, and
# two ranks train about 20% faster (docs/benchmarks.md). MNV2_MAIN_JOB_RANKS=1
# trains in one process, as does a machine where mpirun cannot start.
ranks=${MNV2_MAIN_JOB_RANKS:-2}
if [ "$ranks" != 1 ] && [ "$ranks" != 2 ]; then
  echo "main-job.sh: MNV2_MAIN_JOB_RANKS must be 1 or 2, got '$ranks'" >&2
  exit 2
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$ranks" = 2 ] && [ "$(nproc)" -ge 2 ] && command -v mpirun >/dev/null &&
  mpirun -np 2 true >/dev/null 2>&1; then
  mpirun -np 2 "${train[@]}" --batch-size 32 "$@"
else
  "${train[@]}" "$@"
fi
"$bin/mnv2-eval" --weights "$out/model_best.pth" --data "$root/data/digits/val" \
  --json "$out/eval/eval.json"
"$bin/mnv2-export" --weights "$out/checkpoint.pth" --format torchscript --output "$out/model.pt"
"$bin/mnv2-export" --weights "$out/checkpoint.pth" --format onnx --output "$out/model.onnx"
echo "main job done: results in $out"
