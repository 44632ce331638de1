"""One call each of fuse (3 streams B256 T500 bf16) and voxelize (count, occupancy, and sum, mean and max
with F=8, 16M points into 128^3), inside an NVTX range named `measure`, for Nsight Compute:

    ncu --nvtx --nvtx-include "measure/" --section SpeedOfLight -o ops python profiling/ncu_ops.py [CALL ...]

CALLs name a subset, in order: fuse (the B256 case), fuse16 (16 streams B64 T200), fuse16_b1 and fuse16_b16 (the
same streams at B = 1 and 16), fuse32 (B32 T50), count, occupancy, sum, mean, max; none: fuse and the five voxelize
calls.

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


def main(argv: list[str]) -> None:
    def fuse_call(case: int, batch: int | None = None):
        _, B, T, specs, _ = bench_fuse.GPU_CASES[case]
        streams, tgt = bench_fuse.make_inputs(batch or B, T, specs, "cuda")
        return lambda: robocache.fuse(streams, tgt)

    def voxelize_call(mode: str):
        points, features = bench_voxelize.make_inputs(1, 16 * bench_voxelize.M, 8, "cuda")
        grid = bench_voxelize.grid_args(128)
        if mode in ("count", "occupancy"):
            return lambda: robocache.voxelize(points, mode=mode, **grid)
        return lambda: robocache.voxelize(points, features, mode=mode, **grid)

    makers = {"fuse32": lambda: fuse_call(0), "fuse": lambda: fuse_call(1), "fuse16": lambda: fuse_call(2),
              "fuse16_b1": lambda: fuse_call(2, 1), "fuse16_b16": lambda: fuse_call(2, 16)}
    makers.update({m: (lambda m=m: voxelize_call(m)) for m in ("count", "occupancy", "sum", "mean", "max")})
    names = argv or ["fuse", "count", "occupancy", "sum", "mean", "max"]
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise SystemExit(f"ncu_ops.py: unknown calls {unknown}; choose from {sorted(makers)}")
    calls = [makers[n]() for n in names]
    for call in calls:  # warm up outside the range
        call()
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_push("measure")
    for call in calls:
        call()
    torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()


if __name__ == "__main__":
    main(sys.argv[1:])
