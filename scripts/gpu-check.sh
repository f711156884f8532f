#!/usr/bin/env bash
# The whole CUDA path in one command, on a machine with NVIDIA GPUs: training
# on the embedded digits with fp16 and bf16 AMP, eval --benchmark in fp32,
# fp16 and bf16 on CUDA, export from a CUDA checkpoint, and data-parallel
# training with torchrun (NCCL) over every visible GPU. Prints a summary
# table and exits non-zero when any step fails.
#
#   scripts/gpu-check.sh            (sets up first, like the other scripts)
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! gpus=$(nvidia-smi -L 2>/dev/null) || [ -z "$gpus" ]; then
  echo "gpu-check: no NVIDIA GPU visible (nvidia-smi -L lists none)" >&2
  exit 1
fi
"$root/scripts/setup.sh" || exit 1
bin=${MNV2_BUILD_DIR:-$root/build}/apps
python=${MNV2_CACHE:-$HOME/.cache/mnv2}/venv-torch$(sed -n 's/^TORCH_VERSION=//p' "$root/scripts/setup.sh")/bin/python
data=$root/data/digits
out=$(mktemp -d /tmp/mnv2-gpu-check.XXXXXX)
count=$(echo "$gpus" | wc -l)
echo "gpu-check: $count GPU(s); logs in $out"
echo "$gpus"

rows=()
failed=0
# step NAME COMMAND...: runs it, keeps its log, records status, seconds and
# the last images/s figure it printed.
step() {
  local name=$1
  shift
  local start end status rate
  start=$(date +%s.%N)
  if "$@" >"$out/$name.log" 2>&1; then status=ok; else status=FAILED; failed=1; fi
  end=$(date +%s.%N)
  rate=$(grep -oE '[0-9.]+ img/s' "$out/$name.log" | tail -1)
  rows+=("$(printf '%-28s %-7s %8.1f s   %s' "$name" "$status" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" "${rate:--}")")
}

train=("$bin/mnv2-train" --data "$data" --recipe digits --epochs 3 --device cuda)
step train_fp16 "${train[@]}" --amp --amp-dtype fp16 --output "$out/fp16"
step train_bf16 "${train[@]}" --amp --amp-dtype bf16 --output "$out/bf16"
for dtype in fp32 fp16 bf16; do
  step "eval_benchmark_$dtype" "$bin/mnv2-eval" --weights "$out/fp16/checkpoint.pth" \
    --benchmark --device cuda --amp-dtype "$dtype" --batch-size 64
done
step eval_accuracy_cuda "$bin/mnv2-eval" --weights "$out/fp16/checkpoint.pth" \
  --data "$data/val" --device cuda --json "$out/eval/eval.json"
step export_torchscript "$bin/mnv2-export" --weights "$out/fp16/checkpoint.pth" \
  --format torchscript --output "$out/model.pt"
step export_onnx "$bin/mnv2-export" --weights "$out/fp16/checkpoint.pth" \
  --format onnx --output "$out/model.onnx"
step "torchrun_nccl_x$count" "$python" -m torch.distributed.run --nproc_per_node="$count" \
  --no-python "$bin/mnv2-train" --data "$data" --recipe digits --epochs 3 \
  --device cuda --amp --output "$out/ddp"

echo
printf '%-28s %-7s %10s   %s\n' step status time throughput
printf '%s\n' "${rows[@]}"
if ((failed)); then
  echo "gpu-check: FAILED (see the logs in $out)" >&2
  exit 1
fi
echo "gpu-check: all steps passed"
