"""One call each of fuse (3 streams B256 T500 bf16) and voxelize (count, occupancy, and sum, mean and max
with F=8, 16M points into 128^3), inside an NVTX range named `measure`, for Nsight Compute:

    ncu --nvtx --nvtx-include "measure/" --section SpeedOfLight -o ops python profiling/ncu_ops.py

`--kernel-name regex:...` picks kernels (e.g. `regex:bin` for the binned paths: count and occupancy run
`voxelize_bin_kernel` and `voxelize_bin_reduce_kernel`; max `voxelize_bin_kernel` and `voxelize_bin_max_kernel`;
sum and mean `voxelize_bin_kernel`, `voxelize_bin_reduce_kernel` (the counts) and `voxelize_bin_rows_kernel`).
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import robocache  # noqa: E402
from profiling import bench_fuse, bench_voxelize  # noqa: E402


def main() -> None:
    _, B, T, specs, _ = bench_fuse.GPU_CASES[1]
    streams, tgt = bench_fuse.make_inputs(B, T, specs, "cuda")
    points, features = bench_voxelize.make_inputs(1, 16 * bench_voxelize.M, 8, "cuda")
    grid = bench_voxelize.grid_args(128)
    calls = [
        lambda: robocache.fuse(streams, tgt),
        lambda: robocache.voxelize(points, mode="count", **grid),
        lambda: robocache.voxelize(points, mode="occupancy", **grid),
        lambda: robocache.voxelize(points, features, mode="sum", **grid),
        lambda: robocache.voxelize(points, features, mode="mean", **grid),
        lambda: robocache.voxelize(points, features, mode="max", **grid),
    ]
    for call in calls:  # warm up outside the range
        call()
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_push("measure")
    for call in calls:
        call()
    torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
