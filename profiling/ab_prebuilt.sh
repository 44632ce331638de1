#!/usr/bin/env bash
# A/B of prebuilt op libraries in one device call: interleaved sweeps of the resample and fuse bench cases, then
# the fuse/resample CUDA tests (and a memcheck subset) of one of them. No build on the device: each library is
# built here against the device's torch (`DEVICE_VENV=... bash .ci/device_lib`, from a tree with the variant
# applied) and carried in DIR with its torch_version beside it.
#
#   DIR=.devrun ROUNDS=2 TEST_LIB=stageasync bash profiling/ab_prebuilt.sh main stage:,STAGE_TIMES=2048 stageasync
#
# OPS (default resample,fuse) limits the sweeps to the ops a variant can change; MEMCHECK_K replaces the memcheck
# subset's test names.
# Each argument is LIB[:SETTINGS]: DIR/_C_<LIB>.so, swept with sweep_resample.py's --settings (default: the
# built-in choice only). Rounds run every library in turn, so clock drift hits them alike. Logs go to $OUT.
# The tests run against the tree's tests/, so apply the variant's test changes to the tree first.
set -uo pipefail
DIR=${DIR:-.devrun}
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-/tmp/robocache-ab}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The same compiler override as .ci/gpu (the composability tests compile AOTInductor packages).
if [[ -x /usr/bin/g++ && "${CXX:-}" == /opt/gcc/* ]]; then export CXX=/usr/bin/g++ CC=/usr/bin/gcc; fi
[[ -e robocache/meta_kernels ]] || ln -s ../meta_kernels robocache/meta_kernels
T0=$SECONDS
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv,noheader | tee "$OUT/card.txt"

use_lib() { rm -f robocache/_C*.so && cp "$DIR/_C_$1.so" robocache/_C.abi3.so; }

for ((round = 1; round <= ROUNDS; ++round)); do
  for arg in "$@"; do
    lib=${arg%%:*}; settings=""; [[ "$arg" == *:* ]] && settings=${arg#*:}
    use_lib "$lib"
    echo "# round $round: lib $lib settings '$settings' at $((SECONDS - T0)) s" >> "$OUT/sweep_ab.log"
    timeout "${SWEEP_TIMEOUT:-90}" python3 profiling/sweep_resample.py --ops "${OPS:-resample,fuse}" --settings "$settings" 2>&1 | grep -v Warning \
      | tee -a "$OUT/sweep_ab.log" | sed "s/^/r$round $lib: /" | cut -c1-330
  done
done
echo "sweeps done at $((SECONDS - T0)) s"

if [[ -n "${TEST_LIB:-}" ]]; then
  use_lib "$TEST_LIB"
  timeout "${TEST_TIMEOUT:-240}" python3 -m pytest tests/test_fuse.py tests/test_resample.py -q -n 16 \
    -p no:cacheprovider -k cuda 2>&1 | grep -v Warning > "$OUT/tests_$TEST_LIB.log"
  tail -3 "$OUT/tests_$TEST_LIB.log"
  echo "tests done at $((SECONDS - T0)) s"
  timeout "${MEMCHECK_TIMEOUT:-150}" compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 \
    python3 -m pytest tests/test_fuse.py tests/test_resample.py -q -p no:cacheprovider -x \
    -k "cuda and (${MEMCHECK_K:-kernel_settings or long_rows or ragged or many_streams or empty})" 2>&1 | grep -v Warning \
    > "$OUT/memcheck_$TEST_LIB.log"
  tail -3 "$OUT/memcheck_$TEST_LIB.log"
  echo "memcheck done at $((SECONDS - T0)) s"
fi
