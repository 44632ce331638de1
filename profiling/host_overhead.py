"""Where the host time of one small eager call goes (PERF.md: resample B4 <= 6 us, fuse B32 <= 8 us per call).

Times, back to back, the pieces of one call on the launch-bound PERF.md shapes: an empty aten op (the
dispatcher floor of this machine), allocating the outputs, the raw registered op below autograd, and the
public wrapper. The differences say what the wrapper, the C++ checks and the launch each cost.

    python profiling/host_overhead.py [--device cuda|cpu] [--calls 5000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import robocache  # noqa: E402
from profiling import harness  # noqa: E402


def per_call_us(fn, device: str, calls: int) -> float:
    """Median over 5 rounds of the mean wall time per call of `calls` back-to-back calls."""
    rounds = []
    for _ in range(5):
        for _ in range(50):
            fn()
        harness._sync(device)
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        harness._sync(device)
        rounds.append((time.perf_counter() - t0) / calls * 1e6)
    return sorted(rounds)[len(rounds) // 2]


def cases(device: str):
    from profiling.bench_fuse import make_inputs as make_streams
    from profiling.bench_resample import make_inputs

    data, src, tgt = make_inputs(4, 100, 50, 32, torch.bfloat16, device)
    resample_op = torch.ops.robocache.resample.default
    below = torch._C._AutoDispatchBelowAutograd
    x = torch.ones(4, device=device)

    def raw_resample():
        with below():
            return resample_op(data, src, tgt, "linear", None, None, "hold")

    yield "empty aten op (x.add_(1))", lambda: x.add_(1)
    yield "two output allocations (torch.empty)", lambda: (
        torch.empty(4, 50, 32, device=device, dtype=torch.bfloat16),
        torch.empty(4, 50, device=device, dtype=torch.bool),
    )
    yield "resample B4: raw op below autograd", raw_resample
    yield "resample B4: raw op through autograd", lambda: resample_op(data, src, tgt, "linear", None, None, "hold")
    yield "resample B4: robocache.resample", lambda: robocache.resample(data, src, tgt)

    streams, t_tgt = make_streams(32, 50, [(30, 512, "bf16"), (100, 64, "bf16"), (200, 12, "bf16")], device)
    fuse_op = torch.ops.robocache.fuse.default
    d = [s[0] for s in streams]
    t = [s[1] for s in streams]

    def raw_fuse():
        with below():
            return fuse_op(d, t, t_tgt, ["linear"] * 3, [-1.0] * 3, [None] * 3, "bfloat16")

    yield "fuse B32 T50: raw op below autograd", raw_fuse
    yield "fuse B32 T50: robocache.fuse", lambda: robocache.fuse(streams, t_tgt)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--json")
    args = p.parse_args(argv)
    rows = []
    for name, fn in cases(args.device):
        us = per_call_us(fn, args.device, args.calls)
        rows.append({"what": name, "us_per_call": us})
        print(f"{us:8.2f} us  {name}", flush=True)
    env = harness.environment(args.device, 0.0)
    env["copy_bandwidth_GBps"] = None  # not measured here
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
