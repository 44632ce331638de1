"""Sweep of the resample and fuse CUDA tile shapes: GPU time of each bench case under each tuning setting.

    python profiling/sweep_resample.py [--settings KEY=V:KEY=V,...] [--ops resample,fuse] [--json PATH]

Each setting runs in its own process, since the kernels read their tuning variables once. A setting is
`:`-separated KEY=VALUE pairs, each KEY standing for the variable ROBOCACHE_TUNE_<KEY>: ITEMS (work items per
thread of a forward tile, resample and fuse; 0 = the built-in choice), STAGE_TIMES (rows of at most this many source
times are staged in shared memory; default 2048) and ASYNC_COPIES (0: aligned rows are loaded into registers item by
item instead of copied ahead with cp.async), all read in ops_cuda/cuda/resample_tile.cuh, so for fuse too; and STAGE
(0: resample searches source times in global memory even when they would fit in shared memory), read in
ops_cuda/cuda/resample_cuda.cu. An empty setting is the built-in choice. Outputs are checked
against the float64 reference before timing, as in the benches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child() -> None:
    import torch

    from profiling import bench_fuse, bench_resample

    device = "cuda"
    results = {}
    ops = sys.argv[sys.argv.index("--child") + 1].split(",")
    for B, S, T, D, dname, variant in bench_resample.GPU_CASES if "resample" in ops else ():
        if variant == "plain":
            dtype = bench_resample.DTYPES[dname]
            results[f"B{B} S{S} T{T} D{D} {dname}"] = bench_resample.time_resample(B, S, T, D, dtype, device).time_us
            torch.cuda.empty_cache()  # the input sets of one case are gone before the next case allocates its own
    for name, B, T, specs, out_name in bench_fuse.GPU_CASES if "fuse" in ops else ():
        results[f"fuse {name} B{B} T{T}"] = bench_fuse.time_fuse(B, T, specs, bench_fuse.DTYPES[out_name], device).time_us
        torch.cuda.empty_cache()
    print("RESULT " + json.dumps(results))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default=",ITEMS=2,ITEMS=4,ITEMS=8,ITEMS=16,ITEMS=16:STAGE=0")
    p.add_argument("--ops", default="resample,fuse")
    p.add_argument("--json")
    args = p.parse_args()
    from profiling import harness

    rows = []
    for _, setting, times in harness.run_tuning_settings(__file__, args.settings, (args.ops,)):
        if times is None:
            continue
        rows.append({"setting": setting, "time_us": times})
        print(" ".join(f"{k[len('ROBOCACHE_TUNE_'):]}={v}" for k, v in setting.items()) or "built-in", "|",
              " | ".join(f"{case}: {t:.1f}" for case, t in times.items()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
