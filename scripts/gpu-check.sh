#!/usr/bin/env bash
# The GPU check in one command, on a machine with NVIDIA GPUs that has only
# LibTorch (a Python `torch` package), a C++ compiler, nvcc and CMake: it
# builds tests/gpu alone (the model library and the engine's step core; no
# OpenCV, HDF5, MPI or other packages), never calls apt or pip, and runs it:
# CUDA against the CPU in fp32/fp64, AMP fp16 (loss scaling) and bf16,
# inference paths, NCCL over every visible GPU, and images/s side by side
# with the machine's own PyTorch. Prints a table; exits non-zero when a check
# fails, or with one line naming what is missing.
#
#   scripts/gpu-check.sh                 on a GPU machine
#   scripts/gpu-check.sh --device cpu    the CPU mode (NCCL, throughput skipped)
#
# Table and logs go to $OUT when set, else build-gpu-check/out. MNV2_PYTHON
# names the Python whose torch is used (default python3); Torch_DIR a LibTorch
# instead; MNV2_GPU_BUILD_DIR the build tree (default ./build-gpu-check).
# Other options go to mnv2-gpu-check (--short, --device).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${MNV2_GPU_BUILD_DIR:-$root/build-gpu-check}
out=${OUT:-$build/out}
python=${MNV2_PYTHON:-python3}
start=$(date +%s)
say() { printf '[gpu-check] %s\n' "$*"; }

# What the build needs, all checked before anything runs.
missing=()
command -v cmake >/dev/null || missing+=("cmake")
cxx=${CXX:-}
[ -n "$cxx" ] || cxx=$(command -v c++ || command -v g++ || command -v clang++ || true)
[ -n "$cxx" ] || missing+=("a C++ compiler (c++, g++ or clang++)")
if command -v ninja >/dev/null; then generator=Ninja
elif command -v make >/dev/null; then generator="Unix Makefiles"
else missing+=("ninja or make"); fi
if [ -n "${Torch_DIR:-}" ]; then
  torch_arg="-DTorch_DIR=$Torch_DIR"
  torch_cuda=unknown
elif prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null); then
  torch_arg="-DCMAKE_PREFIX_PATH=$prefix"
  torch_cuda=$("$python" -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null)
else
  missing+=("a Python with torch ($python has none: set MNV2_PYTHON, or Torch_DIR)")
  torch_cuda=""
fi
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
if [ -n "$torch_cuda" ] && ! command -v nvcc >/dev/null; then
  missing+=("nvcc (the CUDA toolkit; a CUDA LibTorch needs it to configure)")
fi
if ((${#missing[@]})); then
  echo "gpu-check: missing: $(IFS=';'; echo "${missing[*]}" | sed 's/;/; /g')" >&2
  exit 1
fi

mkdir -p "$out"
command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | sed 's/^/[gpu-check] /'
say "configuring $build (LibTorch only; log: $out/configure.log)"
cmake -S "$root" -B "$build" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$cxx" -DMNV2_GPU_CHECK_ONLY=ON "$torch_arg" \
  >"$out/configure.log" 2>&1 || {
  tail -n 20 "$out/configure.log" >&2
  echo "gpu-check: the configure failed (log: $out/configure.log)" >&2
  exit 1
}
say "building mnv2-gpu-check (log: $out/build.log)"
cmake --build "$build" --target mnv2-gpu-check --parallel "$(nproc)" \
  >"$out/build.log" 2>&1 || {
  grep -E 'error|Error' "$out/build.log" | head -n 20 >&2
  echo "gpu-check: the build failed (log: $out/build.log)" >&2
  exit 1
}
say "built in $(($(date +%s) - start)) s; running"
"$build/tests/gpu/mnv2-gpu-check" --out "$out" --python "$python" "$@" 2>&1 | tee "$out/run.log"
status=${PIPESTATUS[0]}
say "done in $(($(date +%s) - start)) s (table: $out/gpu-check.txt)"
exit "$status"
