"""fuse against its float64 oracle (per-stream resample reference + cat) on CPU and CUDA: the timestamp
scenarios of real robot logs, dtypes, gradients, errors and composability."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from composability import CHECKS, OpCase, run_check
from helpers import clock_units, cuda_ready, devices, poisoned_outputs, to_clock, tolerances

import robocache
from robocache.reference import fuse_ref, resample_ref

DEVICES = devices("fuse")
TIME_DTYPES = [torch.float32, torch.float64, torch.int64]
_EPS_ORDER = [torch.float64, torch.float32, torch.float16, torch.bfloat16]  # increasing rounding error


def stream_times(kind: str, B: int, S: int, rate: float, g: torch.Generator, batched: bool = True) -> torch.Tensor:
    """Source clocks in seconds (float64, [B,S] or [S]) for one timestamp scenario, spanning about [0, 1]."""
    rows = B if batched else 1
    period = 1.0 / rate
    base = torch.arange(S, dtype=torch.float64) * period
    if kind == "uniform":
        t = base.expand(rows, S).clone()
    elif kind == "nonuniform":  # random gaps, some exact duplicates
        steps = torch.rand(rows, S, generator=g, dtype=torch.float64) * 2 * period
        if S > 3:
            steps[:, S // 3] = 0.0
        t = torch.cumsum(steps, dim=1) - steps[:, :1]
    elif kind == "jittered":  # a nominal rate with +-30% jitter per sample (still increasing)
        t = base + (torch.rand(rows, S, generator=g, dtype=torch.float64) - 0.5) * 0.6 * period
    elif kind == "phase":  # the same rate, shifted by a fraction of a period per row
        t = base + torch.rand(rows, 1, generator=g, dtype=torch.float64) * period
    else:
        raise AssertionError(kind)
    return t if batched else t[0]


# name: (D, dtype, mode, rate Hz). Mixed sizes, rates, dtypes and modes, like a robot log.
MIXED = {
    "camera": (16, torch.bfloat16, "linear", 30.0),
    "joints": (7, torch.float32, "previous", 500.0),
    "orientation": (8, torch.float32, "slerp", 100.0),
    "wrench": (6, torch.float16, "nearest", 250.0),
    "odometry": (3, torch.float64, "linear", 50.0),
}


def make_streams(spec: dict, kind: str, B: int, time_dtype, device, seed=0, span=1.0, shared_times=False):
    g = torch.Generator().manual_seed(seed)
    streams = {}
    for name, (D, dtype, mode, rate) in spec.items():
        S = max(1, int(round(span * rate)))
        data = torch.randn(B, S, D, generator=g, dtype=torch.float64)
        if mode == "slerp":
            data = torch.nn.functional.normalize(data.reshape(B, S, D // 4, 4), dim=-1).reshape(B, S, D)
        times = stream_times(kind, B, S, rate, g, batched=not shared_times)
        streams[name] = (data.to(device=device, dtype=dtype), to_clock(times, time_dtype).to(device))
    return streams


def targets(B: int, T: int, time_dtype, device, g: torch.Generator, lo=-0.05, hi=1.05, batched=True):
    """Targets at a nominal rate over [lo, hi] s with a little jitter (a few fall outside the streams)."""
    x = torch.linspace(lo, hi, T, dtype=torch.float64).expand(B if batched else 1, T)
    x = x + (torch.rand(x.shape, generator=g, dtype=torch.float64) - 0.5) * (hi - lo) / T * 0.5
    x = to_clock(x, time_dtype).to(device)
    return x if batched else x[0]


def compare(streams, tgt, out, valid, ref, ref_valid, out_dtype=None):
    """Each stream's columns against the oracle, at the precision it was computed and rounded to."""
    pairs = list(streams.values()) if isinstance(streams, dict) else list(streams)
    start = 0
    for k, (data, _) in enumerate(pairs):
        D = data.shape[-1]
        compute = torch.float64 if data.dtype == torch.float64 else torch.float32
        od = out_dtype or data.dtype
        worst = max(compute, od, key=_EPS_ORDER.index)
        torch.testing.assert_close(
            out[..., start : start + D].cpu().double(), ref[..., start : start + D].cpu().double(),
            equal_nan=True, msg=lambda m: f"stream {k}: {m}", **tolerances(worst),
        )
        start += D
    assert start == out.shape[-1]
    assert torch.equal(valid.cpu(), ref_valid.cpu())


def run_both(streams, tgt, **kw):
    with poisoned_outputs():
        out, valid = robocache.fuse(streams, tgt, return_mask=True, **kw)
    ref_kw = {k: v for k, v in kw.items() if k != "out_dtype"}
    ref, ref_valid = fuse_ref(streams, tgt, **ref_kw)
    return out, valid, ref, ref_valid


def modes_of(spec):
    return {name: mode for name, (_, _, mode, _) in spec.items()}


# ---- the timestamp scenarios of real logs -------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("time_dtype", TIME_DTYPES)
@pytest.mark.parametrize("kind", ["uniform", "nonuniform", "jittered", "phase"])
def test_scenarios(kind, time_dtype, device):
    g = torch.Generator().manual_seed(1)
    streams = make_streams(MIXED, kind, 3, time_dtype, device, seed=len(kind))
    tgt = targets(3, 50, time_dtype, device, g)
    if time_dtype != torch.int64:
        tgt[1, 7] = float("nan")  # a NaN target: NaN row, invalid for every stream
    tol = {"camera": 0.02 * clock_units(time_dtype), "joints": 0.0015 * clock_units(time_dtype)}
    out, valid, ref, ref_valid = run_both(streams, tgt, modes=modes_of(MIXED), tolerances=tol, out_dtype=torch.float32)
    assert out.shape == (3, 50, 40) and out.dtype == torch.float32 and valid.shape == (3, 50, 5)
    compare(streams, tgt, out, valid, ref, ref_valid, torch.float32)
    if time_dtype != torch.int64:
        assert torch.isnan(out[1, 7]).all() and not valid[1, 7].any()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("time_dtype", TIME_DTYPES)
def test_late_start_early_end_hold_and_mask(time_dtype, device):
    """Streams that start late or end early: held values outside their span, valid false there."""
    g = torch.Generator().manual_seed(2)
    spec = {"late": (5, torch.float32, "linear", 100.0), "early": (4, torch.float32, "previous", 60.0),
            "full": (3, torch.float32, "nearest", 200.0)}
    streams = make_streams(spec, "jittered", 2, time_dtype, device)
    late_d, late_t = streams["late"]
    late_t = late_t + to_clock(torch.tensor(0.4), time_dtype).to(device)  # starts at 0.4 s
    streams["late"] = (late_d, late_t)
    early_d, early_t = streams["early"]
    keep = early_t.shape[-1] // 2
    streams["early"] = (early_d[:, :keep], early_t[:, :keep])  # ends near 0.5 s
    tgt = targets(2, 60, time_dtype, device, g)
    out, valid, ref, ref_valid = run_both(streams, tgt, modes=modes_of(spec))
    compare(streams, tgt, out, valid, ref, ref_valid)
    before = tgt < late_t[:, :1]
    assert before.any() and not valid[..., 0][before].any()
    held = out[..., :5][before]
    first = late_d[:, 0][:, None].expand(2, 60, 5)[before]
    assert torch.equal(held, first)  # the first sample, held bit for bit
    end = early_t.double()[:, keep - 1 : keep]
    after = tgt.double() > end
    assert after.any() and not valid[..., 1][after].any()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["linear", "previous", "nearest"])
def test_dropout_tolerance_mask(mode, device):
    """A stream with a long dropout: targets in the gap are invalid under a tolerance, valid without one."""
    g = torch.Generator().manual_seed(3)
    t = torch.arange(100, dtype=torch.float64) / 100.0
    t = torch.cat([t[:30], t[70:]])  # no samples between 0.29 s and 0.70 s
    data = torch.randn(2, t.numel(), 6, generator=g).to(device)
    other = (torch.randn(2, 40, 3, generator=g).to(device), (torch.arange(40, dtype=torch.float64) / 40).to(device))
    streams = [(data, t.to(device)), other]
    tgt = targets(2, 80, torch.float64, device, g, lo=0.0, hi=0.99)
    out, valid, ref, ref_valid = run_both(streams, tgt, modes=[mode, "linear"], tolerances=[0.02, None])
    compare(streams, tgt, out, valid, ref, ref_valid)
    gap = (tgt > 0.33) & (tgt < 0.66)
    assert gap.any() and not valid[..., 0][gap].any() and valid[..., 1][gap].all()
    _, valid_no_tol = robocache.fuse(streams, tgt, modes=[mode, "linear"], return_mask=True)
    assert valid_no_tol[..., 0][gap].all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["linear", "previous", "nearest", "slerp"])
def test_single_sample_and_empty_streams(mode, device):
    """S=1 streams hold their sample everywhere; S=0 streams (and rows of length 0) give zeros, invalid."""
    g = torch.Generator().manual_seed(4)
    one = torch.nn.functional.normalize(torch.randn(3, 1, 4, generator=g), dim=-1).to(device)
    empty = torch.randn(3, 0, 8, generator=g).to(device)
    full = torch.nn.functional.normalize(torch.randn(3, 20, 4, generator=g), dim=-1).to(device)
    t_full = torch.sort(torch.rand(3, 20, generator=g), dim=1).values.to(device)
    streams = [(one, torch.tensor([0.5], device=device)), (empty, torch.zeros(3, 0, device=device)), (full, t_full)]
    lengths = [None, None, torch.tensor([20, 0, 1], device=device)]
    tgt = torch.rand(3, 17, generator=g).to(device)
    out, valid, ref, ref_valid = run_both(streams, tgt, modes=mode, src_lengths=lengths)
    compare(streams, tgt, out, valid, ref, ref_valid)
    assert (out[..., 4:12] == 0).all() and not valid[..., 1].any()
    assert (out[1, :, 12:] == 0).all() and not valid[1, :, 2].any()
    # only an exact hit on the single sample is "inside its range"
    assert torch.equal(valid[..., 0], (tgt == 0.5))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("num_streams", [16, 37])
def test_many_streams(num_streams, device):
    """16 streams (the SPEC minimum), and 37 (more than one CUDA launch holds: two launches)."""
    g = torch.Generator().manual_seed(num_streams)
    modes = ["linear", "previous", "nearest", "slerp"]
    dtypes = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
    spec = {}
    for k in range(num_streams):
        D = int(torch.randint(1, 17, (), generator=g)) * 4
        spec[f"s{k}"] = (D, dtypes[k % 4], modes[(k // 4) % 4], float(torch.randint(20, 400, (), generator=g)))
    streams = make_streams(spec, "jittered", 2, torch.float64, device, seed=num_streams)
    tgt = targets(2, 33, torch.float64, device, g)
    tol = {f"s{k}": 0.004 for k in range(0, num_streams, 3)}
    out, valid, ref, ref_valid = run_both(streams, tgt, modes=modes_of(spec), tolerances=tol, out_dtype=torch.float32)
    assert valid.shape == (2, 33, num_streams)
    compare(streams, tgt, out, valid, ref, ref_valid, torch.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_many_tiles_per_row(device):
    """Hundreds of CUDA blocks per row (two streams of 1024 columns take tiles of a few targets at T = 1500), with
    narrow streams of one or two blocks between them: every block finds its own stream among the row's blocks, in
    the forward (against the oracle) and in the backward (against float64 autograd of the oracle)."""
    g = torch.Generator().manual_seed(31)
    spec = {"a": (4, torch.float32, "linear", 40.0), "wide1": (1024, torch.bfloat16, "linear", 60.0),
            "b": (12, torch.bfloat16, "previous", 90.0), "wide2": (1024, torch.float32, "nearest", 30.0),
            "c": (8, torch.float32, "linear", 200.0)}
    streams = make_streams(spec, "jittered", 2, torch.float32, device, seed=31)
    for data, _ in streams.values():
        data.requires_grad_()
    tgt = targets(2, 1500, torch.float32, device, g)
    out, valid, ref, ref_valid = run_both(streams, tgt, modes=modes_of(spec), out_dtype=torch.float32)
    compare(streams, tgt, out.detach(), valid, ref.detach(), ref_valid, torch.float32)
    w = torch.randn(out.shape, generator=g).to(device)
    (out * w).sum().backward()
    leaves64 = {k: d.detach().double().requires_grad_() for k, (d, _) in streams.items()}
    ref64, _ = fuse_ref({k: (leaves64[k], t) for k, (_, t) in streams.items()}, tgt, modes=modes_of(spec))
    (ref64 * w.double()).sum().backward()
    for k, (data, _) in streams.items():
        torch.testing.assert_close(data.grad.double(), leaves64[k].grad, msg=lambda m: f"stream {k}: {m}",
                                   **tolerances(data.dtype))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32])
def test_upsampled_streams_in_large_launches(out_dtype, device):
    """A launch with enough blocks for the CUDA tile rule's full items per thread, where upsampled streams (fewer
    samples than targets) get tiles sized by the bytes they store (more targets per tile with bfloat16 output,
    fewer with float32), next to downsampled streams of the launch's size: a wide stream whose rows take 16-byte
    loads (stored whole or as two halves: sum D = 588 bfloat16 rows start 8-byte aligned only), a narrow upsampled
    stream of 8-byte accesses, ragged rows, and targets past both ends."""
    g = torch.Generator().manual_seed(41)
    spec = {"camera": (512, torch.bfloat16, "linear", 300.0), "imu": (12, torch.bfloat16, "linear", 120.0),
            "joints": (64, torch.bfloat16, "nearest", 1000.0)}
    B, T = 48, 500
    streams = make_streams(spec, "jittered", B, torch.float32, device, seed=41)
    tgt = targets(B, T, torch.float32, device, g)
    lengths = torch.randint(0, 301, (B,), generator=g).to(device)
    out, valid, ref, ref_valid = run_both(streams, tgt, modes=modes_of(spec), src_lengths={"camera": lengths},
                                          tolerances={"imu": 0.004}, out_dtype=out_dtype)
    compare(streams, tgt, out, valid, ref, ref_valid, out_dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_mixed_dtypes(out_dtype, device):
    """bf16 image features + fp32 joints + fp16 + fp64 streams, written into one out_dtype tensor."""
    g = torch.Generator().manual_seed(5)
    spec = {"feat": (64, torch.bfloat16, "linear", 30.0), "joints": (7, torch.float32, "linear", 500.0),
            "wrench": (6, torch.float16, "previous", 200.0), "pose": (12, torch.float64, "linear", 100.0)}
    streams = make_streams(spec, "jittered", 3, torch.float32, device)
    tgt = targets(3, 41, torch.float32, device, g)
    out, valid, ref, ref_valid = run_both(streams, tgt, modes=modes_of(spec), out_dtype=out_dtype)
    assert out.dtype == out_dtype
    compare(streams, tgt, out, valid, ref, ref_valid, out_dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_rounded_once_bitwise(device):
    """Stream columns are resample computed in float32 from the stream's dtype, rounded once to out_dtype:
    bit for bit the same as robocache.resample on the upcast stream, and never rounded to bf16 on the way."""
    g = torch.Generator().manual_seed(6)
    feat = torch.randn(2, 30, 16, generator=g).to(device, torch.bfloat16)
    joints = torch.randn(2, 200, 7, generator=g).to(device)
    t_feat = torch.sort(torch.rand(30, generator=g)).values.to(device)
    t_joints = torch.sort(torch.rand(2, 200, generator=g), dim=1).values.to(device)
    tgt = torch.rand(2, 25, generator=g).to(device)
    streams = [(feat, t_feat), (joints, t_joints)]
    out32 = robocache.fuse(streams, tgt, out_dtype=torch.float32)
    assert torch.equal(out32[..., :16], robocache.resample(feat.float(), t_feat, tgt))
    assert torch.equal(out32[..., 16:], robocache.resample(joints, t_joints, tgt))
    assert not torch.equal(out32[..., :16], out32[..., :16].bfloat16().float())  # really float32 values
    out16 = robocache.fuse(streams, tgt, out_dtype=torch.bfloat16)
    assert torch.equal(out16[..., 16:], robocache.resample(joints, t_joints, tgt).bfloat16())
    same = robocache.fuse([(feat, t_feat), (feat[:, :20], t_feat[:20])], tgt)  # one dtype: out_dtype not needed
    assert same.dtype == torch.bfloat16
    assert torch.equal(same[..., :16], robocache.resample(feat, t_feat, tgt))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("time_dtype", TIME_DTYPES)
def test_shared_time_bases_and_layouts(time_dtype, device):
    """Stride-0 shared time bases ([S] times, expanded [B,S] times, one tensor for two streams), [T]
    targets, expanded (stride-0) and transposed data, and a misaligned column slice."""
    g = torch.Generator().manual_seed(7)
    B = 4
    t_a = to_clock(stream_times("jittered", B, 40, 40.0, g, batched=False), time_dtype).to(device)
    t_b = to_clock(stream_times("uniform", B, 90, 90.0, g, batched=False), time_dtype).to(device)
    a = torch.randn(1, 40, 8, generator=g).to(device).expand(B, 40, 8)  # one trajectory for every row
    b = torch.randn(B, 8, 90, generator=g).to(device).transpose(1, 2)  # [B,90,8] with column stride 90
    c = torch.randn(B, 40, 13, generator=g).to(device)[:, :, 1:12]  # odd offset into wider rows
    streams = [(a, t_a), (b, t_b.expand(B, 90)), (c, t_a), (a.double(), t_a)]
    tgt = targets(B, 31, time_dtype, device, g, batched=False)
    out, valid, ref, ref_valid = run_both(streams, tgt, modes=["linear", "nearest", "previous", "linear"],
                                          out_dtype=torch.float32)
    compare(streams, tgt, out, valid, ref, ref_valid, torch.float32)
    for r in range(1, B):  # shared data and times: every row identical
        assert torch.equal(out[r, :, :8], out[0, :, :8])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("heavy", [None, "slerp", "float64"])
def test_access_widths_and_kernel_flavours(heavy, out_dtype, device):
    """Streams whose rows, pointers and column offsets allow 16-, 8-byte or only scalar accesses, in a
    launch with or without a stream that needs the full CUDA kernel flavour (slerp or float64 data):
    every access width and flavour gives the oracle's values, and the same bits whatever the flavour."""
    g = torch.Generator().manual_seed(13)
    B, S, T = 3, 24, 37
    base = torch.randn(B, S, 80, generator=g).to(device, torch.bfloat16)
    base32 = torch.randn(B, S, 40, generator=g).to(device)
    t = torch.sort(torch.rand(B, S, generator=g), dim=1).values.to(device)
    streams = [
        (base[..., 0:16], t),  # 16-byte aligned rows (80 bf16 = 160 bytes), 16 columns
        (base[..., 16:24], t),  # 8 columns at a 16-byte offset
        (base[..., 25:33], t),  # misaligned pointer: scalar loads
        (base[..., 36:48], t),  # 12 columns: 8-byte accesses only
        (base32[..., 0:8], t),  # float32, 16-byte accesses
        (base32[..., 1:6], t),  # float32, odd width
    ]
    if heavy == "slerp":
        quat = torch.nn.functional.normalize(torch.randn(B, S, 4, generator=g), dim=-1).to(device)
        streams.append((quat, t))
    elif heavy == "float64":
        streams.append((torch.randn(B, S, 4, generator=g, dtype=torch.float64).to(device), t))
    modes = ["linear"] * 6 + (["slerp"] if heavy == "slerp" else ["linear"] if heavy else [])
    tgt = torch.rand(B, T, generator=g).to(device)
    out, valid, ref, ref_valid = run_both(streams, tgt, modes=modes, out_dtype=out_dtype)
    compare(streams, tgt, out, valid, ref, ref_valid, out_dtype)
    light = robocache.fuse(streams[:6], tgt, out_dtype=out_dtype)
    assert torch.equal(out[..., : light.shape[-1]], light)
    # Aligned output rows (sum D a multiple of 8) allow 16-byte stores too.
    aligned = robocache.fuse(streams[:2] + [(base[..., 40:48], t)], tgt, out_dtype=out_dtype)
    assert torch.equal(aligned[..., :24], out[..., :24])


def _kernel_setting_cases(device):
    """fuse and resample calls for the CUDA setting test below: every access width (16-, 8-byte, scalar loads
    of misaligned or strided views; 16-byte loads stored as two 8-byte halves), a stream that starts late
    (hold), 16-byte loads into rows 8 bytes past a 16-byte boundary through the fixed-column loop, ragged lengths
    with an empty row, unsorted targets with a NaN and targets on exact source times, T not a multiple of any tile,
    rows of 1300 and 1500 samples (staged in two cp.async batches per thread) under sorted and unsorted targets, and
    upsampled tiles (more targets than the source rows they span). Outputs are poisoned. Returns the fuse calls
    as (streams, kwargs, targets), their results, resample's results, and resample's calls as (data, times,
    targets, kwargs)."""
    g = torch.Generator().manual_seed(21)
    B, S, T = 5, 40, 77
    base = torch.randn(B, S, 80, generator=g).to(device, torch.bfloat16)
    base32 = torch.randn(B, S, 40, generator=g).to(device)
    t = torch.sort(torch.rand(B, S, generator=g), dim=1).values.to(device)
    late = (torch.sort(torch.rand(S, generator=g)).values * 0.5 + 0.5).to(device)
    streams = [
        # sum D = 108: float32 output rows allow 16-byte stores, so the first three streams take wide loads
        (base[..., 0:64], t),  # 16-byte loads of 16-bit data
        (base[..., 36:48], t),  # 12 columns: 8-byte loads
        (base32[..., 0:16], late),  # float32, 16-byte loads, shared late times
        (base32[..., 1:6], t),  # float32, 5 columns: scalar
        (base[..., 25:30], t),  # misaligned 16-bit view: scalar
        (base32[:, :7, 8:9].transpose(1, 2).expand(B, 6, 7).contiguous().transpose(1, 2), t[:, :7]),  # strided
    ]
    tgt = torch.rand(B, T, generator=g).to(device)
    tgt[1, 5] = float("nan")
    tgt[2, :4] = t[2, [0, 3, 9, 39]]
    lengths = torch.tensor([S, 0, 17, 1, 30], device=device)
    fuse_kw = dict(modes=["linear", "nearest", "linear", "previous", "linear", "linear"],
                   tolerances=[None, 0.01, None, None, None, 0.02], src_lengths=[lengths, None, None, None, lengths, None])
    # sum D = 84 bfloat16: rows start 8-byte aligned only, so 16-byte loads (columns 0 and 76) store two halves
    split = [(base[..., 0:64], t), (base[..., 36:48], t), (base[..., 16:24], late)]
    split_kw = dict(modes=["linear", "nearest", "linear"], src_lengths=[lengths, None, None])
    calls = [(streams, dict(out_dtype=torch.float32, **fuse_kw), tgt),
             (split, dict(out_dtype=torch.bfloat16, **split_kw), tgt)]
    # 16-byte loads into rows that start 8 bytes past a 16-byte boundary, through the fixed-column loop with 32, 64
    # or 256 column groups: every other row (sum D = 516; the stream at column 4 of rows of 2052) or every row (the
    # stream at column 4 of rows of 264). The wide streams are the ragged ones.
    rows512 = torch.randn(B, S, 512, generator=g).to(device, torch.bfloat16)
    rows2048 = torch.randn(B, S, 2048, generator=g).to(device, torch.bfloat16)
    offset_rows = [
        [(rows512, t), (base[..., 40:44], late)],
        [(base[..., 40:44], late), (rows512[..., :256], t), (base[..., 44:48], t)],
        [(base[..., 44:48], t), (rows2048, t)],
    ]
    ragged = [[lengths, None], [None, lengths, None], [None, lengths]]
    calls += [(s, dict(out_dtype=torch.bfloat16, src_lengths=r), tgt) for s, r in zip(offset_rows, ragged)]
    # Rows of 1500 and 1300 samples on drifting clocks (random-walk jitter, as the bench's), ragged down to 0-3
    # samples, next to a staged one; sorted targets over the range and past both ends, then the unsorted ones.
    long_S = 1500
    drift = torch.cumsum(0.5 + torch.rand(B, long_S, generator=g, dtype=torch.float64), 1) / long_S
    long_t = drift.float().to(device)
    long_rows = torch.randn(B, long_S, 64, generator=g).to(device, torch.bfloat16)
    long_tgt = (torch.sort(torch.rand(B, 301, generator=g), dim=1).values * 1.6 - 0.05).to(device)
    long_lengths = torch.tensor([long_S, 0, 3, 2, 1100], device=device)
    long_streams = [(long_rows, long_t), (base32[..., 0:12], t), (long_rows[:, :1300, 8:20].float(), long_t[:, :1300])]
    long_kw = dict(modes=["linear", "nearest", "previous"], tolerances=[None, None, 0.002],
                   src_lengths=[long_lengths, None, None])
    calls += [(long_streams, dict(out_dtype=torch.bfloat16, **long_kw), long_tgt),
              (long_streams, dict(out_dtype=torch.float32, **long_kw), tgt)]
    # Upsampled tiles (7.5 sorted targets per source row; the unsorted targets above are 2 per row), where each
    # source row is read for several targets.
    dense_tgt = torch.sort(torch.rand(B, 301, generator=g), dim=1).values.to(device)
    dense_tgt[3, 100:110] = float("nan")
    calls += [(streams, dict(out_dtype=torch.float32, **fuse_kw), dense_tgt),
              (offset_rows[0], dict(out_dtype=torch.bfloat16, src_lengths=ragged[0]), dense_tgt)]
    with poisoned_outputs():
        fused = [robocache.fuse(s, tg, return_mask=True, **kw) for s, kw, tg in calls]
    # The ring's two loops: a fixed column group per thread where the groups divide the block (up to a few
    # idle threads: 64 columns are 8 groups, 24 are 3), the (target, group) walk where they do not (70 and
    # 257 groups of 8).
    wide = torch.randn(B, S, 257 * 8, generator=g).to(device, torch.bfloat16)
    resample_calls = [(d, t, tgt, dict(src_lengths=lengths, out_of_range=oor))
                      for d, oor in [(base[..., :64], "hold"), (base32[..., :8], "extrapolate"),
                                     (base32[..., :6].double(), "zero"), (base[..., 8:32].half(), "hold"),
                                     (wide[..., : 70 * 8], "hold"), (wide, "extrapolate")]]
    resample_calls += [(long_rows, long_t, long_tgt, dict(src_lengths=long_lengths, out_of_range="extrapolate")),
                       (long_rows[..., :8].float(), long_t.double(), long_tgt.double(), dict(tolerance=0.001)),
                       (long_rows[..., :4], long_t, tgt, dict(mode="nearest", src_lengths=long_lengths))]
    with poisoned_outputs():
        resampled = [robocache.resample(d, tm, tg, return_mask=True, **kw) for d, tm, tg, kw in resample_calls]
    return calls, fused, resampled, resample_calls


# Tuning variables of the CUDA kernels (read once per process) and the loops they select instead of the default:
# ASYNC_COPIES=0 keeps aligned rows on the register loop instead of the cp.async ring; STAGE_TIMES=1024 searches
# the rows of 1300 and 1500 times in global memory (staged by default) beside staged short rows in one launch;
# STAGE_TIMES=0 searches every row in global memory.
KERNEL_SETTINGS = {"register_loop": ("ROBOCACHE_TUNE_ASYNC_COPIES", "0"),
                   "search_long_rows_in_global": ("ROBOCACHE_TUNE_STAGE_TIMES", "1024"),
                   "search_all_rows_in_global": ("ROBOCACHE_TUNE_STAGE_TIMES", "0")}


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_ready("fuse"), reason="no GPU or no CUDA kernel")
@pytest.mark.parametrize("setting", list(KERNEL_SETTINGS))
def test_kernel_settings_agree(setting, tmp_path):
    """Each tuning setting, run in its own process, gives the same bits as the default for fuse and resample,
    and the default matches the oracle."""
    calls, fused, resampled, resample_calls = _kernel_setting_cases("cuda")
    for (streams, kw, tgt), (out, valid) in zip(calls, fused):
        ref, ref_valid = fuse_ref(streams, tgt, **{k: v for k, v in kw.items() if k != "out_dtype"})
        compare(streams, tgt, out, valid, ref, ref_valid, kw["out_dtype"])
    for (data, times, tgt, kw), (out, valid) in zip(resample_calls, resampled):
        ref, ref_valid = resample_ref(data.double(), times, tgt, **kw)
        assert torch.equal(valid, ref_valid)
        torch.testing.assert_close(out.double(), ref, **tolerances(data.dtype), equal_nan=True)
    code = (
        "import sys, torch, robocache\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from test_fuse import _kernel_setting_cases\n"
        "torch.save(_kernel_setting_cases('cuda')[1:3], sys.argv[2])\n"
    )
    path = tmp_path / "setting.pt"
    name, value = KERNEL_SETTINGS[setting]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROBOCACHE_TUNE_")}
    env[name] = value
    proc = subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__), str(path)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got_fused, got_resampled = torch.load(path)
    pairs = [(x, y) for a, b in zip(got_fused + got_resampled, fused + resampled) for x, y in zip(a, b)]
    assert len(pairs) == 2 * (len(calls) + len(resample_calls)) == 36
    for x, y in pairs:
        assert torch.equal(x.isnan(), y.isnan())
        assert torch.equal(x.nan_to_num(7.0), y.nan_to_num(7.0))


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_ready("fuse"), reason="no GPU or no CUDA kernel")
def test_source_offsets_beyond_32_bits():
    """Source rows 2^30 elements apart: a row's offsets pass 2^31, beyond the async-copy loop's 32-bit
    arithmetic, so the host keeps those launches on the register loop. Same bits as a compact copy."""
    g = torch.Generator().manual_seed(23)
    storage = torch.empty(2**31 + 64, dtype=torch.bfloat16, device="cuda")  # 4 GiB, only 24 elements used
    far = storage.as_strided((1, 3, 8), (0, 2**30, 1))
    compact = torch.randn(1, 3, 8, generator=g).to("cuda", torch.bfloat16)
    far.copy_(compact)
    times = torch.tensor([[0.0, 0.4, 1.0]], device="cuda")
    other = torch.randn(1, 5, 8, generator=g).to("cuda", torch.bfloat16)
    other_times = torch.sort(torch.rand(1, 5, generator=g), dim=1).values.cuda()
    tgt = torch.rand(1, 37, generator=g).cuda()
    streams = [(compact, times), (other, other_times)]
    got, valid = robocache.fuse([(far, times), (other, other_times)], tgt, return_mask=True)
    assert torch.equal(got, robocache.fuse(streams, tgt))
    assert torch.equal(robocache.resample(far, times, tgt), robocache.resample(compact, times, tgt))
    ref, ref_valid = fuse_ref(streams, tgt)
    compare(streams, tgt, got, valid, ref, ref_valid)


@pytest.mark.parametrize("device", DEVICES)
def test_wide_stream_rows(device):
    """A stream of 8192 float32 columns (32 KB rows) next to a narrow one."""
    g = torch.Generator().manual_seed(22)
    wide = torch.randn(2, 6, 8192, generator=g).to(device)
    narrow = torch.randn(2, 9, 3, generator=g).to(device)
    t_wide = torch.sort(torch.rand(2, 6, generator=g), dim=1).values.to(device)
    t_narrow = torch.sort(torch.rand(9, generator=g)).values.to(device)
    tgt = torch.rand(2, 11, generator=g).to(device)
    streams = [(wide, t_wide), (narrow, t_narrow)]
    out, valid, ref, ref_valid = run_both(streams, tgt)
    compare(streams, tgt, out, valid, ref, ref_valid)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("empty", ["B", "T", "D", "all_S"])
def test_empty_sizes(empty, device):
    sizes = dict(B=2, T=5)
    if empty in sizes:
        sizes[empty] = 0
    B, T = sizes["B"], sizes["T"]
    Ds = [0, 3] if empty == "D" else [2, 3]
    S = 0 if empty == "all_S" else 4
    streams = [(torch.randn(B, S, D, device=device), torch.zeros(B, S, device=device)) for D in Ds]
    tgt = torch.rand(B, T, device=device)
    out, valid, ref, ref_valid = run_both(streams, tgt)
    assert out.shape == (B, T, sum(Ds)) and valid.shape == (B, T, 2)
    compare(streams, tgt, out, valid, ref, ref_valid)


@pytest.mark.parametrize("device", DEVICES)
def test_epoch_scale_nanosecond_clocks(device):
    """int64 nanosecond epoch clocks: the same result as clocks starting at 0."""
    g = torch.Generator().manual_seed(8)
    spec = {"a": (5, torch.float32, "linear", 100.0), "b": (3, torch.float32, "previous", 30.0)}
    streams = make_streams(spec, "jittered", 2, torch.int64, device)
    tgt = targets(2, 40, torch.int64, device, g)
    base = 1_700_000_000_000_000_000
    shifted = {n: (d, t + base) for n, (d, t) in streams.items()}
    out0 = robocache.fuse(streams, tgt, modes=modes_of(spec))
    out1 = robocache.fuse(shifted, tgt + base, modes=modes_of(spec))
    assert torch.equal(out0, out1)


@pytest.mark.parametrize("device", DEVICES)
def test_api_forms(device):
    """Pairs or dict, one value or a list or a dict per stream, fuse_slices, fuse_multimodal."""
    g = torch.Generator().manual_seed(9)
    spec = {"cam": (6, torch.float32, "linear", 30.0), "joint": (4, torch.float32, "linear", 100.0),
            "grip": (1, torch.float32, "linear", 10.0)}
    streams = make_streams(spec, "jittered", 2, torch.float32, device)
    tgt = targets(2, 20, torch.float32, device, g)
    pairs = list(streams.values())
    by_dict = robocache.fuse(streams, tgt, modes={"grip": "previous"}, tolerances={"cam": 0.05})
    by_list = robocache.fuse(pairs, tgt, modes=["linear", "linear", "previous"], tolerances=[0.05, None, None])
    assert torch.equal(by_dict, by_list)
    slices = robocache.fuse_slices(streams)
    assert slices == {"cam": slice(0, 6), "joint": slice(6, 10), "grip": slice(10, 11)}
    assert robocache.fuse_slices(pairs) == [slice(0, 6), slice(6, 10), slice(10, 11)]
    for name, (data, times) in streams.items():
        mode = "previous" if name == "grip" else "linear"
        assert torch.equal(by_dict[..., slices[name]], robocache.resample(data, times, tgt, mode=mode))
    legacy = robocache.fuse_multimodal(*pairs[0], *pairs[1], *pairs[2], tgt)
    assert torch.equal(legacy, robocache.fuse(pairs, tgt))
    lengths = torch.tensor([3, 5], device=device)
    one_for_all = robocache.fuse(pairs, tgt, src_lengths=lengths, modes="nearest")
    each = robocache.fuse(pairs, tgt, src_lengths=[lengths] * 3, modes=["nearest"] * 3)
    assert torch.equal(one_for_all, each)


# ---- gradients -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    g = torch.Generator().manual_seed(10)
    a = torch.randn(2, 7, 3, generator=g, dtype=torch.float64).to(device).requires_grad_()
    b = torch.randn(2, 5, 2, generator=g, dtype=torch.float64).to(device).requires_grad_()
    c = torch.randn(2, 9, 4, generator=g, dtype=torch.float64).to(device).requires_grad_()
    t_a = torch.sort(torch.rand(7, generator=g, dtype=torch.float64)).values.to(device)
    t_b = torch.sort(torch.rand(2, 5, generator=g, dtype=torch.float64), dim=1).values.to(device)
    t_c = torch.sort(torch.rand(2, 9, generator=g, dtype=torch.float64), dim=1).values.to(device)
    tgt = (torch.rand(2, 11, generator=g, dtype=torch.float64) * 1.2 - 0.1).to(device)
    lengths = [None, torch.tensor([5, 3], device=device), torch.tensor([9, 1], device=device)]

    def fn(x, y, z):
        return robocache.fuse([(x, t_a), (y, t_b), (z, t_c)], tgt, modes=["linear", "previous", "nearest"],
                              src_lengths=lengths)

    torch.autograd.gradcheck(fn, (a, b, c), eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_mixed_dtypes(device):
    g = torch.Generator().manual_seed(11)
    feat = torch.randn(2, 12, 8, generator=g).to(device, torch.bfloat16).requires_grad_()
    joints = torch.randn(2, 30, 3, generator=g).to(device).requires_grad_()
    quat = torch.nn.functional.normalize(torch.randn(2, 6, 4, generator=g), dim=-1).to(device)  # no grad
    t_feat = torch.sort(torch.rand(12, generator=g)).values.to(device)
    t_joints = torch.sort(torch.rand(2, 30, generator=g), dim=1).values.to(device)
    t_quat = torch.sort(torch.rand(6, generator=g)).values.to(device)
    tgt = torch.rand(2, 9, generator=g).to(device)
    out = robocache.fuse([(feat, t_feat), (joints, t_joints), (quat, t_quat)], tgt, modes=["linear", "linear", "slerp"],
                         out_dtype=torch.float32)
    w = torch.randn(out.shape, generator=g).to(device)
    (out * w).sum().backward()
    f64, j64 = feat.detach().double().requires_grad_(), joints.detach().double().requires_grad_()
    ref, _ = fuse_ref([(f64, t_feat), (j64, t_joints), (quat.double(), t_quat)], tgt, modes=["linear", "linear", "slerp"])
    (ref * w.double()).sum().backward()
    assert feat.grad.dtype == torch.bfloat16 and joints.grad.dtype == torch.float32
    torch.testing.assert_close(feat.grad.double(), f64.grad, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(joints.grad.double(), j64.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_gradient_errors(device):
    data = torch.randn(1, 3, 4, device=device, requires_grad=True)
    src = torch.tensor([0.0, 1.0, 2.0], device=device)
    tgt = torch.tensor([0.5, 1.5], device=device)
    with pytest.raises(NotImplementedError, match=r"fuse: modes\[1\]='slerp'"):
        robocache.fuse([(data, src), (data, src)], tgt, modes=["linear", "slerp"]).sum().backward()
    with pytest.raises(NotImplementedError, match="fuse: tgt_times has no gradient"):
        robocache.fuse([(data, src)], tgt.clone().requires_grad_()).sum().backward()
    out = robocache.fuse([(data, src)], tgt)
    (grad,) = torch.autograd.grad(out.sum(), data, create_graph=True)
    with pytest.raises(Exception, match="double backward"):
        grad.sum().backward()


# ---- bad inputs ------------------------------------------------------------------------------------------


def _bad_cases(device):
    d = torch.randn(2, 5, 3, device=device)
    s = torch.arange(5.0, device=device)
    t = torch.rand(2, 4, device=device)
    ok = (d, s)
    other = "cpu" if device != "cpu" else "meta"
    n = torch.tensor([5, 5], device=device)
    return [
        ("empty", ([], t), {}, ValueError, "at least one stream"),
        ("not_pairs", ([d], t), {}, TypeError, r"streams\[0\]"),
        ("not_list", (d, t), {}, TypeError, "streams"),
        ("dict_not_pair", ({"a": ok, "b": d}, t), {}, TypeError, r"streams\['b'\]"),
        ("data_not_tensor", ([ok, (d.tolist(), s)], t), {}, TypeError, r"data\[1\] to be a torch.Tensor, got list"),
        ("times_not_tensor", ([(d, 0.5)], t), {}, TypeError, r"times\[0\] to be a torch.Tensor, got float"),
        ("rank", ([ok, (d[0], s)], t), {}, ValueError, r"data\[1\]"),
        ("batch", ([ok, (torch.randn(3, 5, 3, device=device), s)], t), {}, ValueError, r"data\[1\]"),
        ("times_len", ([(d, s[:4])], t), {}, ValueError, r"times\[0\]"),
        ("times_batch", ([(d, s.expand(3, 5))], t), {}, ValueError, r"times\[0\]"),
        ("tgt_batch", ([ok], torch.rand(3, 4, device=device)), {}, ValueError, "tgt_times"),
        ("tgt_rank", ([ok], torch.rand(2, 4, 1, device=device)), {}, ValueError, "tgt_times"),
        ("times_dtype", ([ok, (d, s.double())], t), {}, TypeError, r"times\[1\]"),
        ("int32_times", ([(d, s.int())], t.int()), {}, TypeError, "tgt_times"),
        ("int_data", ([(d.long(), s)], t), {}, TypeError, r"data\[0\]"),
        ("mixed_dtypes", ([ok, (d.double(), s)], t), {}, TypeError, "out_dtype"),
        ("out_dtype", ([ok], t), dict(out_dtype=torch.int32), TypeError, "out_dtype"),
        ("out_dtype_type", ([ok], t), dict(out_dtype="float32"), TypeError, "out_dtype"),
        ("mode", ([ok, ok], t), dict(modes=["linear", "cubic"]), ValueError, r"modes\[1\]"),
        ("modes_len", ([ok, ok], t), dict(modes=["linear"]), ValueError, "modes"),
        ("slerp_D", ([ok], t), dict(modes="slerp"), ValueError, "slerp"),
        ("tolerance", ([ok], t), dict(tolerances=-1.0), ValueError, r"tolerances\[0\]"),
        ("tolerance_nan", ([ok], t), dict(tolerances=[math.nan]), ValueError, r"tolerances\[0\]"),
        ("tolerance_type", ([ok], t), dict(tolerances=["1"]), TypeError, "tolerances"),
        ("lengths_shape", ([ok], t), dict(src_lengths=n[:1]), ValueError, r"src_lengths\[0\]"),
        ("lengths_dtype", ([ok], t), dict(src_lengths=n.int()), TypeError, r"src_lengths\[0\]"),
        ("lengths_len", ([ok, ok], t), dict(src_lengths=[n]), ValueError, "src_lengths"),
        ("dict_names", ({"a": ok}, t), dict(modes={"b": "linear"}), ValueError, "modes"),
        ("device_data", ([ok, (d.to(other), s)], t), {}, ValueError, r"data\[1\]"),
        ("device_times", ([(d, s.to(other))], t), {}, ValueError, r"times\[0\]"),
        ("device_tgt", ([ok], t.to(other)), {}, ValueError, "tgt_times"),
        ("device_lengths", ([ok], t), dict(src_lengths=n.to(other)), ValueError, r"src_lengths\[0\]"),
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", range(len(_bad_cases("cpu"))))
def test_bad_inputs(case, device):
    name, args, kwargs, exc, word = _bad_cases(device)[case]
    with pytest.raises(exc, match=rf"^fuse: .*{word}"):
        robocache.fuse(*args, **kwargs)


@pytest.mark.parametrize("device", DEVICES)
def test_bad_inputs_raw_op(device):
    """The op itself (what a graph calls) checks list lengths and the tolerance encoding."""
    d, s, t = torch.randn(2, 5, 3, device=device), torch.arange(5.0, device=device), torch.rand(4, device=device)
    op = torch.ops.robocache.fuse.default
    with pytest.raises(ValueError, match=r"^fuse: expected one times tensor per stream"):
        op([d, d], [s], t, ["linear"] * 2, [-1.0] * 2, [None] * 2, None)
    with pytest.raises(ValueError, match=r"^fuse: expected one entry of tolerances per stream"):
        op([d], [s], t, ["linear"], [], [None], None)
    with pytest.raises(ValueError, match=r"^fuse: expected at least one stream"):
        op([], [], t, [], [], [], None)
    assert op([d], [s], t, ["linear"], [-1.0], [None], None)[1].all()  # a negative tolerance means none
    assert op([d], [s], t, ["linear"], [-1.0], [None], "float64")[0].dtype == torch.float64
    with pytest.raises(TypeError, match=r"^fuse: expected out_dtype to be float32, float64, float16 or bfloat16"):
        op([d], [s], t, ["linear"], [-1.0], [None], "int8")


def test_bad_lengths_values_cpu():
    d, s, t = torch.randn(2, 5, 3), torch.arange(5.0), torch.rand(4)
    with pytest.raises(ValueError, match=r"^fuse: expected every src_lengths\[1\] value in \[0, 5\]"):
        robocache.fuse([(d, s), (d, s)], t, src_lengths=[None, torch.tensor([6, 2])])


def test_debug_mode_checks_sorted_times():
    code = (
        "import torch, robocache\n"
        "d = torch.randn(2, 6, 3)\n"
        "s = torch.tensor([0.0, 2.0, 1.0, 3.0, 5.0, 4.0])\n"
        "try:\n"
        "    robocache.fuse([(d, torch.arange(6.0)), (d, s)], s)\n"
        "except ValueError as e:\n"
        "    print('RAISED', e)\n"
    )
    env = dict(os.environ, ROBOCACHE_DEBUG="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "RAISED fuse: ROBOCACHE_DEBUG found source times that decrease" in proc.stdout, proc.stderr


# ---- composability ---------------------------------------------------------------------------------------

_MODES = ["linear", "previous", "nearest"]
_TOLS = [2e-3, None, 5e-3]


def _make_inputs(batch, device):
    g = torch.Generator().manual_seed(batch)
    a = torch.randn(batch, 9, 8, generator=g).to(device, torch.bfloat16)
    t_a = torch.cumsum(torch.rand(batch, 9, generator=g) * 2e-3, dim=1).to(device)
    b = torch.randn(batch, 13, 3, generator=g).to(device)
    t_b = torch.cumsum(torch.rand(13, generator=g) * 2e-3, dim=0).to(device)  # shared by all rows
    c = torch.randn(batch, 5, 4, generator=g).to(device)
    t_c = torch.cumsum(torch.rand(batch, 5, generator=g) * 4e-3, dim=1).to(device)
    tgt = (torch.rand(batch, 7, generator=g) * 0.02).to(device)
    lengths = torch.randint(1, 10, (batch,), generator=g).to(device)
    return a, t_a, b, t_b, c, t_c, tgt, lengths


def _fuse_call(a, t_a, b, t_b, c, t_c, tgt, lengths):
    return robocache.fuse([(a, t_a), (b, t_b), (c, t_c)], tgt, modes=_MODES, tolerances=_TOLS,
                          src_lengths=[lengths, None, None], out_dtype=torch.float32, return_mask=True)


CASE = OpCase(
    name="fuse",
    op=torch.ops.robocache.fuse.default,
    fn=_fuse_call,
    make_inputs=_make_inputs,
    op_args=lambda x: (([x[0], x[2], x[4]], [x[1], x[3], x[5]], x[6], _MODES, [2e-3, -1.0, 5e-3],
                        [x[7], None, None], "float32"), {}),
    batch_dims=(0, 0, 0, None, 0, 0, 0, 0),
    grad_inputs=(0, 2, 4),
)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("check", CHECKS)
def test_composability(check, device, tmp_path):
    run_check(check, CASE, device, tmp_path)


def test_oracle_is_resample_ref_per_stream():
    """The oracle itself: per-stream resample_ref (hold) concatenated, valid stacked."""
    g = torch.Generator().manual_seed(12)
    streams = make_streams(MIXED, "nonuniform", 2, torch.float64, "cpu")
    tgt = targets(2, 10, torch.float64, "cpu", g)
    out, valid = fuse_ref(streams, tgt, modes=modes_of(MIXED))
    start = 0
    for name, (data, times) in streams.items():
        ref, ref_valid = resample_ref(data, times, tgt, mode=MIXED[name][2])
        assert torch.equal(out[..., start : start + data.shape[-1]], ref)
        assert torch.equal(valid[..., list(streams).index(name)], ref_valid)
        start += data.shape[-1]
