"""Benchmark of `resample` against the eager and torch.compile reference and the byte floor (PERF.md).

On CUDA every time is GPU time per call from CUDA-graph replays (input sets rotated past L2);
`eager_call_us` is the wall time of one whole eager Python call of robocache, issued back to back.

    python profiling/bench_resample.py [--device cuda|cpu] [--quick] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import robocache  # noqa: E402
from profiling import harness  # noqa: E402
from robocache.reference import resample_ref  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
GPU_CASES = [  # (B, S, T, D, dtype, variant) -- PERF.md shapes first
    (4, 100, 50, 32, "bf16", "plain"),
    (32, 500, 256, 256, "bf16", "plain"),
    (256, 2000, 1000, 256, "bf16", "plain"),
    (256, 2000, 1000, 256, "fp32", "plain"),
    (1024, 200, 100, 64, "bf16", "plain"),
    (256, 2000, 1000, 256, "bf16", "mask"),  # tolerance + valid mask: <= 10% over plain
]
CPU_CASES = [
    (32, 500, 256, 256, "fp32", "plain"),
    (256, 2000, 1000, 64, "fp32", "plain"),
]
QUICK_CPU_CASES = [(8, 200, 100, 64, "fp32", "plain")]
MAX_ERR = {torch.bfloat16: 5e-3, torch.float16: 1e-3, torch.float32: 1e-5}


def make_inputs(B, S, T, D, dtype, device, seed=0):
    """Jittered ~1 kHz source clocks per row, sorted targets inside the range, random data."""
    g = torch.Generator(device=device).manual_seed(seed)
    data = torch.randn(B, S, D, device=device, dtype=torch.float32, generator=g).to(dtype)
    steps = 1e-3 * (0.5 + torch.rand(B, S, device=device, generator=g))
    src = torch.cumsum(steps, dim=1)
    lo, hi = src[:, :1], src[:, -1:]
    tgt = lo + (hi - lo) * torch.sort(torch.rand(B, T, device=device, generator=g), dim=1).values
    return data, src, tgt


def reference_fn(variant):
    tol = variant_kwargs(variant).get("tolerance")

    def ref(data, src, tgt):  # what a user would write instead: searchsorted + gather + lerp, in float32
        out, valid = resample_ref(data, src, tgt, tolerance=tol, compute_dtype=torch.float32)
        return out.to(data.dtype), valid

    return ref


def variant_kwargs(variant):
    """robocache.resample's options of a case variant: "mask" adds the tolerance and the valid mask."""
    return dict(tolerance=1e-3, return_mask=True) if variant == "mask" else {}


def time_resample(B, S, T, D, dtype, device, variant="plain", label=None) -> harness.CheckedTiming:
    """robocache.resample's GPU time per call on this case, after checking its output against the float64 reference.
    The byte floor reads only the source rows some target needs (left and right of each target): with T < S not
    every row is touched, and a kernel that reads every row is not the limit. sets[0] holds the checked inputs."""
    kwargs = variant_kwargs(variant)
    es = torch.empty((), dtype=dtype).element_size()
    data, src, tgt = make_inputs(B, S, T, D, dtype, device)
    rows_read = harness.rows_needed(src, tgt)
    nbytes = rows_read * D * es + B * T * D * es + 4 * (B * S + B * T) + (B * T if variant == "mask" else 0)

    out = robocache.resample(data, src, tgt, **kwargs)
    out = out[0] if isinstance(out, tuple) else out
    ref64, _ = resample_ref(data.double(), src, tgt)
    err = harness.check_output(label or f"resample {B}x{S}x{T}x{D}", out, ref64, MAX_ERR[dtype])
    del ref64
    sets = harness.rotation(lambda: make_inputs(B, S, T, D, dtype, device, seed=1), nbytes, device)
    sets[0] = (data, src, tgt)
    us = harness.median_time_us(lambda i: robocache.resample(*sets[i], **kwargs), device, n_sets=len(sets))
    return harness.CheckedTiming(us, nbytes, rows_read, err, out, sets)


def bench_case(B, S, T, D, dname, variant, device, bandwidth, compile_baseline=True):
    dtype = DTYPES[dname]
    kwargs = variant_kwargs(variant)
    ours = time_resample(B, S, T, D, dtype, device, variant, label=f"resample {B}x{S}x{T}x{D} {dname}")
    sets, n = ours.sets, len(ours.sets)
    data, src, tgt = sets[0]
    ref = reference_fn(variant)
    eager = harness.median_time_us(lambda i: ref(*sets[i]), device, min_reps=5, n_sets=n)
    compiled_us = None
    if compile_baseline:
        compiled_us = harness.compiled_time_us(ref, (data, src, tgt), sets, device,
                                               check=(ours.out.double(), 2 * MAX_ERR[dtype] + 1e-6))
    extra = {}
    if device.startswith("cuda"):  # what one eager Python call costs, back to back (host-bound when small)
        extra["eager_call_us"] = harness.host_call_time_us(lambda: robocache.resample(data, src, tgt, **kwargs), device)
    extra["rows_read_pct"] = 100.0 * ours.rows_read / (B * S)
    return harness.Row(
        op="resample", case=f"B{B} S{S} T{T} D{D}" + (" +mask,tol" if variant == "mask" else ""), dtype=dname,
        time_us=ours.time_us, floor_us=ours.nbytes / bandwidth * 1e6, bytes=ours.nbytes, rel_err=ours.rel_err,
        eager_us=eager, compiled_us=compiled_us, extra=extra,
    )


def run(device: str, quick: bool = False) -> tuple[list[harness.Row], dict]:
    if device.startswith("cuda"):
        cases = GPU_CASES[:2] if quick else GPU_CASES
    else:
        cases = QUICK_CPU_CASES if quick else CPU_CASES
    return harness.run_cases(cases, bench_case, device)


def main(argv=None):
    harness.bench_main("resample", run, __doc__, argv)


if __name__ == "__main__":
    main()
