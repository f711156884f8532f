#!/usr/bin/env bash
# Sets up (idempotent, with the Python test oracles) and runs every test.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh" --oracles
ctest --test-dir "${MNV2_BUILD_DIR:-$root/build}" --output-on-failure "$@"
