"""Benchmark of `voxelize` against the eager and torch.compile reference and the byte floor (PERF.md).

    python profiling/bench_voxelize.py [--device cuda|cpu] [--quick] [--json PATH] [--markdown PATH]

Points are uniform in [-11, 11)^3 and the grid covers [-10, 10)^3 (about 75% of the points inside), as in
PERF.md. Each row reports G points/s (B*N / time) next to the time, and the floor counts the points and
features read once and the grid written once. On CUDA every time is GPU time per call from CUDA-graph
replays (input sets rotated past L2); `eager_call_us` is one whole eager Python call of robocache.
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import robocache  # noqa: E402
from profiling import harness  # noqa: E402
from robocache.reference import voxelize_ref  # noqa: E402

M = 1 << 20
# (B, N per cloud, F, grid side, mode, deterministic) -- PERF.md shapes
GPU_CASES = [
    (1, 1 * M, 0, 128, "count", False),
    (1, 16 * M, 0, 128, "count", False),
    (1, 1 * M, 0, 128, "occupancy", False),
    (1, 16 * M, 0, 128, "occupancy", False),
    (1, 16 * M, 8, 128, "sum", False),
    (1, 16 * M, 8, 128, "mean", False),
    (1, 16 * M, 8, 128, "max", False),
    (1, 16 * M, 8, 128, "mean", True),
    (8, 2 * M, 0, 128, "count", False),  # 8 clouds into 8 grids: within 20% of the single-cloud rate
    (8, 2 * M, 0, 128, "occupancy", False),
]
CPU_CASES = [
    (1, 1 * M, 0, 64, "count", False),
    (1, 1 * M, 8, 64, "mean", False),
    (1, 1 * M, 8, 64, "max", False),
    (4, 256 * 1024, 0, 64, "count", False),
]
QUICK_CPU_CASES = [
    (1, 200_000, 0, 64, "count", False),
    (1, 200_000, 8, 64, "mean", False),
]


def grid_args(side):
    return dict(grid_min=(-10.0, -10.0, -10.0), voxel_size=20.0 / side, grid_size=(side, side, side))


def make_inputs(B, N, F, device, seed=0):
    g = torch.Generator(device=device).manual_seed(seed)
    points = torch.rand(B, N, 3, device=device, generator=g) * 22 - 11
    features = torch.randn(B, N, F, device=device, generator=g) if F else None
    return points, features


def reference_fn(side, mode):
    grid = grid_args(side)

    def ref(points, features):  # what a user would write instead: index_add_ / scatter_reduce_ in float32
        return voxelize_ref(points, features, **grid, mode=mode, compute_dtype=torch.float32)

    return ref


def gate(name, out, points, features, side, mode):
    """Correctness before timing: count/occupancy/max exact, sum/mean against the float64 oracle."""
    ref = voxelize_ref(points, features.double() if features is not None else None, **grid_args(side), mode=mode)
    if mode in ("count", "occupancy", "max"):
        if not torch.equal(out.double() if mode == "max" else out, ref):
            raise AssertionError(f"{name}: differs from the reference; not timing a wrong kernel")
        return 0.0
    return harness.check_output(name, out, ref, 1e-5)


def bench_case(B, N, F, side, mode, deterministic, device, bandwidth, compile_baseline=True):
    grid = grid_args(side)
    V = side**3
    out_bytes = {"count": 4, "occupancy": 1}.get(mode, 4 * F)
    nbytes = B * N * (12 + 4 * F) + B * V * out_bytes
    name = f"voxelize {mode} B{B} N{N} F{F} {side}^3" + (" det" if deterministic else "")

    points, features = make_inputs(B, N, F, device)
    call = lambda p, f: robocache.voxelize(p, f, **grid, mode=mode, deterministic=deterministic)  # noqa: E731
    out = call(points, features)
    err = gate(name, out, points, features, side, mode)
    del out

    sets = harness.rotation(lambda: make_inputs(B, N, F, device, seed=1), B * N * (12 + 4 * F), device)
    sets[0] = (points, features)
    n = len(sets)
    ours = harness.median_time_us(lambda i: call(*sets[i]), device, n_sets=n)
    ref = reference_fn(side, mode)
    eager = harness.median_time_us(lambda i: ref(*sets[i]), device, warmup=2, min_reps=5, n_sets=n)
    compiled_us = None
    if compile_baseline:
        compiled_us = harness.compiled_time_us(ref, (points, features), sets, device, warmup=2)
    extra = {"gpts_per_s": B * N / ours / 1e3}
    if device.startswith("cuda"):  # one whole eager Python call, back to back (host-bound when small)
        extra["eager_call_us"] = harness.host_call_time_us(lambda: call(points, features), device, calls=200)
    return harness.Row(
        op="voxelize", case=f"{mode}{' det' if deterministic else ''} B{B} N{N // 1024}K F{F} {side}^3",
        dtype="fp32", time_us=ours, floor_us=nbytes / bandwidth * 1e6, bytes=nbytes, rel_err=err, eager_us=eager,
        compiled_us=compiled_us, extra=extra,
    )


def run(device: str, quick: bool = False, case_ids: list[int] | None = None):
    if device.startswith("cuda"):
        ids = case_ids if case_ids is not None else ((1, 3, 5, 8) if quick else range(len(GPU_CASES)))
        cases = [GPU_CASES[i] for i in ids]
    else:
        cases = QUICK_CPU_CASES if quick else CPU_CASES
    # torch.compile of the reference costs tens of seconds per case on a small CPU: once in quick mode.
    rows, env = harness.run_cases(
        cases, bench_case, device,
        case_kwargs=lambda k: {"compile_baseline": device.startswith("cuda") or not quick or k == 0},
    )
    single = [r for r in rows if r.case.startswith("count B1") and "16384K" in r.case]
    for r in rows:
        if single and r.case.startswith("count B8"):
            r.extra["vs_single_cloud_rate"] = r.extra["gpts_per_s"] / single[0].extra["gpts_per_s"]
    return rows, env


def main(argv=None):
    harness.bench_main("voxelize", run, __doc__, argv, with_cases=True)


if __name__ == "__main__":
    main()
