#!/usr/bin/env bash
# The main job on the embedded default data (scikit-learn's handwritten
# digits): set up, then train, evaluate and export MobileNetV2.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
bin=${MNV2_BUILD_DIR:-$root/build}/apps
out=${MNV2_RUN_DIR:-$root/runs/digits}
"$bin/mnv2-train" --data "$root/data/digits" --output "$out" --recipe digits
"$bin/mnv2-eval" --weights "$out/model_best.pth" --data "$root/data/digits/val" \
  --img-size 64 --resize-size 64 --json "$out/eval.json"
"$bin/mnv2-export" --weights "$out/model_best.pth" --format torchscript --output "$out/model.pt" --img-size 64
"$bin/mnv2-export" --weights "$out/model_best.pth" --format onnx --output "$out/model.onnx" --img-size 64
echo "main job done: $out"
