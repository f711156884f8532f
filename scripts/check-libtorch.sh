#!/usr/bin/env bash
# Builds the project against another LibTorch and runs the whole test suite
# there, as a user who brings their own LibTorch would (Torch_DIR through
# scripts/test.sh). The LibTorch is the PyPI `torch` wheel of that version,
# in a Python environment of its own in the cache; the test oracles stay the
# pinned ones.
#
#   scripts/check-libtorch.sh 2.15.0 [ctest options]
#
# The build goes to build-torch<VERSION>/ (MNV2_BUILD_DIR moves it). A cold
# build takes about 5 minutes on 2 cores, the suite about 10.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=${1:-}
case "$version" in
  -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
  "") echo "check-libtorch.sh: name a torch version, e.g. 2.15.0 (try --help)" >&2; exit 2 ;;
esac
shift
[[ "$version" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || {
  echo "check-libtorch.sh: '$version' is not a torch version such as 2.15.0" >&2
  exit 2
}
cache=${MNV2_CACHE:-$HOME/.cache/mnv2}
venv="$cache/venv-libtorch$version"
if [ ! -f "$venv/.mnv2-installed" ]; then
  echo "[check-libtorch] installing torch==$version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==$version"
  touch "$venv/.mnv2-installed"
fi
torch_dir=$("$venv/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null)/Torch
echo "[check-libtorch] LibTorch $("$venv/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null) at $torch_dir"
Torch_DIR=$torch_dir MNV2_BUILD_DIR=${MNV2_BUILD_DIR:-$root/build-torch$version} \
  exec "$root/scripts/test.sh" "$@"
