#!/usr/bin/env bash
# One device call in priority order (device time was short): build, the fuse CUDA tests plus the CUDA
# parts added since the last full GPU run, memcheck on fuse, then the fuse and voxelize benchmarks.
set -uo pipefail
export ROBOCACHE_COMMIT=${ROBOCACHE_COMMIT:-unknown}
STEPS=build bash .ci/gpu || exit 1
echo "=== tests ($(date +%T))"
python3 -m pytest tests/test_fuse.py tests/test_resample.py tests/test_bench_tools.py tests/test_registry.py -q -n 12 \
  -p no:cacheprovider -k "test_fuse or test_shapes_and_layouts or trace or registry" 2>&1 | tee "$OUT/pytest.log" | grep -E "passed|failed|FAILED|Error" | tail -15
echo "=== memcheck fuse ($(date +%T))"
compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 20 python3 -m pytest tests/test_fuse.py -q \
  -p no:cacheprovider -x -k "cuda and (test_many_streams or test_single_sample or test_mixed_dtypes or test_access_widths or test_gradcheck)" \
  2>&1 | tee "$OUT/sanitizer.log" | tail -3
echo "=== bench fuse ($(date +%T))"
python3 profiling/bench_fuse.py --json "$OUT/bench_fuse.json" --markdown "$OUT/bench_fuse.md" 2>&1 | grep "^| fuse" 
echo "=== bench voxelize ($(date +%T))"
python3 profiling/bench_voxelize.py --cases 1,3,5,6,7,8 --json "$OUT/bench_voxelize.json" --markdown "$OUT/bench_voxelize.md" 2>&1 | grep "^| voxelize"
echo "=== done ($(date +%T))"
