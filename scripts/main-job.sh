#!/usr/bin/env bash
# The main job on the embedded default data (scikit-learn's handwritten
# digits): set up, then train, evaluate and export MobileNetV2.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
bin=${MNV2_BUILD_DIR:-$root/build}/apps
out=${MNV2_RUN_DIR:-$root/runs/digits}
# --overwrite: the main job starts over each time it is run.
"$bin/mnv2-train" --data "$root/data/digits" --output "$out" --recipe digits --overwrite "$@"
"$bin/mnv2-eval" --weights "$out/model_best.pth" --data "$root/data/digits/val" \
  --json "$out/eval/eval.json"
"$bin/mnv2-export" --weights "$out/checkpoint.pth" --format torchscript --output "$out/model.pt"
"$bin/mnv2-export" --weights "$out/checkpoint.pth" --format onnx --output "$out/model.onnx"
echo "main job done: results in $out"
