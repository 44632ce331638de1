"""A/B of the CUDA occupancy paths: GPU time of voxelize(mode="occupancy") under each tuning setting.

    python profiling/ab_occupancy.py [--settings "KEY=V:KEY=V,..."] [--json PATH]

Each setting runs in its own process (the kernels read their tuning variables once). A setting is `:`-separated
KEY=VALUE pairs, KEY standing for ROBOCACHE_TUNE_<KEY> (ops_cuda/cuda/voxelize_cuda.cu): OCCUPANCY_MASK (the most
mask words per block, as a power of two; 0: the binned two-pass path instead of the cluster bitmask). An empty
setting is the built-in choice. Every output is checked against `count > 0` of the same points (the count path
shares no code with the occupancy bitmask) before it is timed. Points uniform in [-11, 11)^3, grid [-10, 10)^3 as in
bench_voxelize.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

M = 1024 * 1024
CASES = [(1, 1 * M, 128), (1, 4 * M, 128), (1, 16 * M, 128), (8, 2 * M, 128), (1, 16 * M, 64)]  # (B, N, grid side)


def child() -> None:
    import torch

    import robocache
    from profiling import harness
    from profiling.bench_voxelize import grid_args, make_inputs

    results = {}
    for B, N, side in CASES:
        grid = grid_args(side)
        points, _ = make_inputs(B, N, 0, "cuda")
        got = robocache.voxelize(points, **grid, mode="occupancy")
        if not torch.equal(got, robocache.voxelize(points, **grid, mode="count") > 0):
            raise AssertionError(f"occupancy B{B} N{N} {side}^3 differs from count > 0; not timing it")
        sets = harness.rotation(lambda: make_inputs(B, N, 0, "cuda", seed=1)[0], B * N * 12, "cuda")
        sets[0] = points
        us = harness.median_time_us(lambda i: robocache.voxelize(sets[i], **grid, mode="occupancy"), "cuda",
                                    n_sets=len(sets))
        results[f"occupancy B{B} N{N // 1024}K {side}^3"] = {"us": us, "gpts_per_s": B * N / us / 1e3}
        torch.cuda.empty_cache()
    print("RESULT " + json.dumps(results), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default=",OCCUPANCY_MASK=0")
    p.add_argument("--json")
    args = p.parse_args()
    from profiling import harness

    table = {label: r for label, _, r in harness.run_tuning_settings(__file__, args.settings) if r is not None}
    cases = sorted({c for r in table.values() for c in r}, key=lambda c: list(next(iter(table.values()))).index(c))
    print("| setting | " + " | ".join(cases) + " |")
    print("|---|" + "---|" * len(cases))
    for setting, r in table.items():
        cells = [f"{r[c]['us']:.1f} us ({r[c]['gpts_per_s']:.0f} G/s)" if c in r else "-" for c in cases]
        print(f"| {setting} | " + " | ".join(cells) + " |")
    if args.json:
        env = harness.environment("cuda", harness.copy_bandwidth("cuda"))
        with open(args.json, "w") as f:
            json.dump({"environment": env, "results": table}, f, indent=1)


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
