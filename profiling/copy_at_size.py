"""What a plain copy of the same bytes reaches at the size of each fuse bench case: the ceiling a gather at that size
can hope for, beside fuse's own time from the same run.

    python profiling/copy_at_size.py

The byte floor of the benches is bytes / (the copy bandwidth of a 1 GiB copy). A small launch cannot reach that
bandwidth even when it does nothing but copy: the launch, the ramp-up of its first wave and its tail cost the
same few microseconds whatever the size. For each GPU case of bench_fuse.py this times, under CUDA-graph replay
with rotating buffers (as the benches do), an elementwise copy kernel moving the case's floor bytes (half read,
half written; `torch.mul(src, 1, out=dst)`, which stays a kernel inside a graph where `copy_` may become a
copy-engine memcpy node) and the checked fuse call, and prints both as % of the floor.
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from profiling import bench_fuse, harness  # noqa: E402


def copy_time_us(nbytes: int, device: str) -> float:
    """GPU time of one elementwise copy kernel reading nbytes / 2 and writing nbytes / 2 (bf16 elements)."""
    n = max(1, nbytes // 4)

    def make():
        return torch.randn(n, device=device).to(torch.bfloat16), torch.empty(n, device=device, dtype=torch.bfloat16)

    sets = harness.rotation(make, 4 * n, device)
    src, dst = sets[0]
    torch.mul(src, 1, out=dst)
    if not torch.equal(dst, src):
        raise AssertionError("copy_at_size: the copy kernel did not copy")
    return harness.median_time_us(lambda i: torch.mul(sets[i][0], 1, out=sets[i][1]), device, n_sets=len(sets))


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("copy_at_size.py: needs a CUDA device")
    device = "cuda"
    bandwidth = harness.copy_bandwidth(device)
    print(f"{torch.cuda.get_device_name()} | 1 GiB copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    for name, B, T, specs, out_name in bench_fuse.GPU_CASES:
        timed = bench_fuse.time_fuse(B, T, specs, bench_fuse.DTYPES[out_name], device)
        floor_us = timed.nbytes / bandwidth * 1e6
        del timed.sets[:]
        copy_us = copy_time_us(timed.nbytes, device)
        print(f"fuse {name} B{B} T{T} {out_name}: {timed.nbytes / 1e6:.1f} MB, floor {floor_us:.1f} us | "
              f"copy of those bytes {copy_us:.1f} us = {100 * floor_us / copy_us:.0f}% of the floor | "
              f"fuse {timed.time_us:.1f} us = {100 * floor_us / timed.time_us:.0f}%")


if __name__ == "__main__":
    main()
