"""How fuse's 16-stream bench case (S 50-1421, D 4-64 bf16, T200) scales: GPU time against the batch size B, and
optionally the time of each of its streams in a launch of its own.

    python profiling/fuse_scaling.py [--batches 16,32,64,128] [--per-stream] [--subsets 0-5,6-15]

Times are GPU time per call under CUDA-graph replay with rotating input sets, as in the benches, after checking the
output against the float64 reference. A launch with a fixed cost per block shows as a large intercept (B small)
with a shallow slope; a launch held by its waves shows as steps where the block count crosses a multiple of the
resident blocks (19 blocks per row at 8 items per thread, the tile rule until 0352339; fuse now takes at most 4,
so more blocks per row; 792 resident on an H100 or H200). profiling/NOTES.md (2026-12-03, third session) has what
it measured. `--subsets` times launches of some of the 16 streams (index ranges, as `0-5`) beside the whole
case: if the launch costs about the sum of its blocks' lives over the resident blocks, dropping the streams whose
tiles hold few items (the narrow ones: one tile per row of T targets) should save about their share of it.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from profiling import bench_fuse, harness  # noqa: E402

T = 200


def fuse_time_us(specs, B: int, device: str, bandwidth: float) -> tuple[float, float]:
    """GPU time of one checked bf16 fuse call of these streams at batch B (bench_fuse.time_fuse), and the bench's
    byte floor of that call over `bandwidth`."""
    timed = bench_fuse.time_fuse(B, T, specs, torch.bfloat16, device)
    return timed.time_us, timed.nbytes / bandwidth * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", default="16,32,40,41,42,44,48,56,64,72,79,80,96,128")
    p.add_argument("--per-stream", action="store_true", help="also time each stream alone at every batch size")
    p.add_argument("--subsets", default="", help="comma-separated stream index ranges (0-5) to time at every batch size")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("fuse_scaling.py: needs a CUDA device")
    device = "cuda"
    tuning = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("ROBOCACHE_TUNE_")]
    print(torch.cuda.get_device_name(), "|", " ".join(tuning) or "built-in settings")
    bandwidth = harness.copy_bandwidth(device)
    for B in (int(b) for b in args.batches.split(",")):
        us, floor = fuse_time_us(bench_fuse.SIXTEEN, B, device, bandwidth)
        row = [f"B{B:4d}: all {us:6.1f} us ({us / B:.3f} us/row, {100 * floor / us:.0f}% of the floor)"]
        for subset in filter(None, args.subsets.split(",")):
            first, _, last = subset.partition("-")
            specs = bench_fuse.SIXTEEN[int(first) : int(last or first) + 1]
            row.append(f"streams {subset} {fuse_time_us(specs, B, device, bandwidth)[0]:.1f}")
        if args.per_stream:
            row += [f"S{S} D{D} {fuse_time_us(((S, D, dn),), B, device, bandwidth)[0]:.1f}"
                    for S, D, dn in bench_fuse.SIXTEEN]
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
