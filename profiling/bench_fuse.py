"""Benchmark of `fuse` against the eager and torch.compile per-stream reference (+ cat) and the byte floor
(PERF.md).

On CUDA every time is GPU time per call from CUDA-graph replays (input sets rotated past L2);
`eager_call_us` is the wall time of one whole eager Python call of robocache, issued back to back (the
"<= 8 us per call" target of the small shape). The byte floor counts, as bench_resample's does, the
source rows some target needs (left and right of each target, per stream; `rows_read_pct`), every
stream's times and the targets read once, and the output and valid mask written once.

    python profiling/bench_fuse.py [--device cuda|cpu] [--quick] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import robocache  # noqa: E402
from profiling import harness  # noqa: E402
from robocache.reference import fuse_ref  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SIXTEEN = tuple((int(50 * 1.25**k), 4 * (k + 1), "bf16") for k in range(16))  # S 50..1421, D 4..64
# (name, B, T, streams as (S, D, dtype), out dtype). PERF.md / issue shapes first.
# Case names start as the PERF.md targets of profiling/bench_all.py expect ("3 streams B256 T500", ...).
GPU_CASES = [
    ("3 streams", 32, 50, ((30, 512, "bf16"), (100, 64, "bf16"), (200, 12, "bf16")), "bf16"),
    ("3 streams", 256, 500, ((300, 512, "bf16"), (1000, 64, "bf16"), (2000, 12, "bf16")), "bf16"),
    ("16 streams", 64, 200, SIXTEEN, "bf16"),
    ("3 mixed-dtype streams", 256, 500, ((300, 512, "bf16"), (1000, 64, "fp32"), (2000, 12, "fp32")), "fp32"),
]
CPU_CASES = [
    ("3 streams", 32, 50, ((30, 512, "fp32"), (100, 64, "fp32"), (200, 12, "fp32")), "fp32"),
    ("3 streams", 64, 200, ((120, 256, "fp32"), (400, 64, "fp32"), (800, 12, "fp32")), "fp32"),
]
QUICK_CPU_CASES = CPU_CASES[:1]
MAX_ERR = {torch.bfloat16: 5e-3, torch.float16: 1e-3, torch.float32: 1e-5}


def make_inputs(B, T, specs, device, seed=0):
    """Per stream: jittered clocks at its own rate over ~1 s (a fresh base per row), random data; targets
    sorted inside [0, 1] s."""
    g = torch.Generator(device=device).manual_seed(seed)
    streams = []
    for S, D, dname in specs:
        data = torch.randn(B, S, D, device=device, dtype=torch.float32, generator=g).to(DTYPES[dname])
        steps = (0.5 + torch.rand(B, S, device=device, generator=g)) / S
        times = torch.cumsum(steps, dim=1) - steps[:, :1]
        streams.append((data, times))
    tgt = torch.sort(torch.rand(B, T, device=device, generator=g), dim=1).values
    return streams, tgt


def reference_fn(out_dtype):
    def ref(streams, tgt):  # what a user would write instead: per-stream searchsorted + gather + lerp, cat
        out, valid = fuse_ref(streams, tgt, compute_dtype=torch.float32)
        return out.to(out_dtype), valid

    return ref


def case_bytes(B, T, specs, out_dtype, rows_read=None):
    """Bytes of the floor; `rows_read` (per stream) counts only the source rows needed, else all rows."""
    es = {n: torch.empty((), dtype=d).element_size() for n, d in DTYPES.items()}
    total_D = sum(D for _, D, _ in specs)
    rows_read = rows_read or [B * S for S, _, _ in specs]
    data = sum(n * D * es[dn] for n, (_, D, dn) in zip(rows_read, specs))
    times = 4 * (sum(B * S for S, _, _ in specs) + B * T)
    out = B * T * total_D * torch.empty((), dtype=out_dtype).element_size() + B * T * len(specs)
    return data + times + out


def time_fuse(B, T, specs, out_dtype, device, label=None) -> harness.CheckedTiming:
    """robocache.fuse's GPU time per call on this case, after checking its output against the float64 reference.
    The byte floor counts the rows some target needs; sets[0] holds the checked inputs."""
    streams, tgt = make_inputs(B, T, specs, device)
    rows_read = [harness.rows_needed(times, tgt) for _, times in streams]
    nbytes = case_bytes(B, T, specs, out_dtype, rows_read)
    out = robocache.fuse(streams, tgt, out_dtype=out_dtype)
    ref64, _ = fuse_ref(streams, tgt)
    err = harness.check_output(label or f"fuse {len(specs)} streams B{B} T{T}", out, ref64, MAX_ERR[out_dtype])
    del ref64
    sets = harness.rotation(lambda: make_inputs(B, T, specs, device, seed=1), nbytes, device)
    sets[0] = (streams, tgt)
    us = harness.median_time_us(lambda i: robocache.fuse(*sets[i], out_dtype=out_dtype), device, n_sets=len(sets))
    return harness.CheckedTiming(us, nbytes, sum(rows_read), err, out, sets)


def bench_case(name, B, T, specs, out_name, device, bandwidth, compile_baseline=True):
    out_dtype = DTYPES[out_name]
    ours = time_fuse(B, T, specs, out_dtype, device, label=f"fuse {name} B{B} T{T}")
    sets, n = ours.sets, len(ours.sets)
    streams, tgt = sets[0]
    ref = reference_fn(out_dtype)
    eager = harness.median_time_us(lambda i: ref(*sets[i]), device, min_reps=5, n_sets=n)
    compiled_us = None
    if compile_baseline:
        compiled_us = harness.compiled_time_us(ref, (streams, tgt), sets, device,
                                               check=(ours.out.double(), 2 * MAX_ERR[out_dtype] + 1e-6))
    extra = {}
    if device.startswith("cuda"):  # one whole eager Python call, back to back (host-bound when small)
        extra["eager_call_us"] = harness.host_call_time_us(lambda: robocache.fuse(streams, tgt, out_dtype=out_dtype),
                                                           device)
    extra["rows_read_pct"] = 100.0 * ours.rows_read / sum(B * S for S, _, _ in specs)
    shapes = " ".join(f"{S}x{D}" + ("" if dn == out_name else f" {dn}") for S, D, dn in specs)
    if len(specs) > 4:
        shapes = f"S{specs[0][0]}-{specs[-1][0]} D{specs[0][1]}-{specs[-1][1]}"
    return harness.Row(
        op="fuse", case=f"{name} B{B} T{T} ({shapes})", dtype=out_name, time_us=ours.time_us,
        floor_us=ours.nbytes / bandwidth * 1e6, bytes=ours.nbytes, rel_err=ours.rel_err, eager_us=eager,
        compiled_us=compiled_us, extra=extra,
    )


def run(device: str, quick: bool = False):
    if device.startswith("cuda"):
        cases = GPU_CASES[:2] if quick else GPU_CASES
    else:
        cases = QUICK_CPU_CASES if quick else CPU_CASES
    return harness.run_cases(cases, bench_case, device)


def main(argv=None):
    harness.bench_main("fuse", run, __doc__, argv)


if __name__ == "__main__":
    main()
