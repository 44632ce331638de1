"""resample against its float64 oracle on CPU and CUDA, plus gradients, errors and composability."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from composability import CHECKS, OpCase, run_check
from helpers import (
    DATA_DTYPES,
    assert_close_to_ref,
    clock_units,
    devices,
    poisoned_outputs,
    sorted_times,
    targets_around,
    to_clock,
)

import robocache
from robocache.reference import resample_ref

MODES = ["linear", "previous", "nearest", "slerp"]
OUT_OF_RANGE = ["hold", "extrapolate", "zero"]
TIME_DTYPES = [torch.float32, torch.float64, torch.int64]


def make_case(B, S, T, D, dtype, time_dtype, device, seed=0, layout="contiguous", lengths=False):
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(B, S, D, generator=g, dtype=torch.float64)
    src = sorted_times(B, S, time_dtype, g)
    tgt = targets_around(src, T, g)
    src_lengths = torch.randint(0, S + 1, (B,), generator=g) if lengths else None
    if layout == "noncontiguous":  # every input strided
        data = data.transpose(1, 2).contiguous().transpose(1, 2)
        src = src.t().contiguous().t()
        tgt = torch.stack([tgt, tgt], dim=-1)[..., 0]
    elif layout == "expanded":  # stride-0 batch for data, a shared [S] time base and [T] targets
        data = data[:1].expand(B, S, D)
        src = src[0]
        tgt = tgt[0]
    return data.to(device=device, dtype=dtype), src.to(device), tgt.to(device), (
        src_lengths.to(device) if src_lengths is not None else None
    )


def run_both(data, src, tgt, **kw):
    with poisoned_outputs():
        out, valid = robocache.resample(data, src, tgt, return_mask=True, **kw)
    ref, ref_valid = resample_ref(data.double(), src, tgt, **kw)
    return out, valid, ref, ref_valid


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("time_dtype", TIME_DTYPES)
@pytest.mark.parametrize("dtype", DATA_DTYPES)
@pytest.mark.parametrize("out_of_range", OUT_OF_RANGE)
@pytest.mark.parametrize("mode", MODES)
def test_correctness(mode, out_of_range, dtype, time_dtype, device):
    data, src, tgt, _ = make_case(3, 17, 29, 8, dtype, time_dtype, device, seed=hash((mode, out_of_range)) % 1000)
    if mode == "slerp":
        data = torch.nn.functional.normalize(data.double().reshape(3, 17, 2, 4), dim=-1).reshape(3, 17, 8).to(dtype)
    tol = 4e5 if time_dtype == torch.int64 else 4e-4
    out, valid, ref, ref_valid = run_both(data, src, tgt, mode=mode, out_of_range=out_of_range, tolerance=tol)
    assert out.dtype == dtype and out.shape == (3, 29, 8) and out.device.type == device
    assert_close_to_ref(out, ref, dtype)
    assert torch.equal(valid.cpu(), ref_valid.cpu())


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("layout", ["contiguous", "noncontiguous", "expanded"])
# (2, 5000, ...): source rows too long for shared memory, so the CUDA kernel searches them in global memory.
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 1, 7, 3), (3, 2, 5, 33), (5, 64, 9, 256), (2, 300, 301, 6), (2, 5000, 37, 3)])
@pytest.mark.parametrize("mode", ["linear", "previous", "nearest"])
def test_shapes_and_layouts(mode, shape, layout, device):
    B, S, T, D = shape
    data, src, tgt, _ = make_case(B, S, T, D, torch.float32, torch.float32, device, seed=B * S + T, layout=layout)
    out, valid, ref, ref_valid = run_both(data, src, tgt, mode=mode)
    assert_close_to_ref(out, ref, torch.float32)
    assert torch.equal(valid.cpu(), ref_valid.cpu())


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("empty", ["B", "S", "T", "D", "all"])
@pytest.mark.parametrize("mode", MODES)
def test_empty(mode, empty, device):
    sizes = dict(B=3, S=5, T=4, D=8)
    if empty == "all":
        sizes = dict(B=0, S=0, T=0, D=0)
    else:
        sizes[empty] = 0
    if mode == "slerp" and sizes["D"] % 4:
        pytest.skip("slerp needs D % 4 == 0")
    data, src, tgt, _ = make_case(sizes["B"], sizes["S"], sizes["T"], sizes["D"], torch.float32, torch.float32, device)
    out, valid, ref, ref_valid = run_both(data, src, tgt, mode=mode)
    assert out.shape == (sizes["B"], sizes["T"], sizes["D"]) and valid.shape == (sizes["B"], sizes["T"])
    assert_close_to_ref(out, ref, torch.float32)
    assert torch.equal(valid.cpu(), ref_valid.cpu())
    if sizes["S"] == 0:
        assert not valid.any() and (out == 0).all()


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("mode", MODES)
def test_ragged_lengths(mode, device):
    B, S, T, D = 7, 23, 31, 8
    data, src, tgt, lengths = make_case(B, S, T, D, torch.float32, torch.float64, device, seed=7, lengths=True)
    lengths[0], lengths[1], lengths[2] = 0, 1, S  # an empty row, a single-sample row, a full row
    for oor in OUT_OF_RANGE:
        out, valid, ref, ref_valid = run_both(data, src, tgt, mode=mode, src_lengths=lengths, out_of_range=oor)
        assert_close_to_ref(out, ref, torch.float32)
        assert torch.equal(valid.cpu(), ref_valid.cpu())
        assert (out[0] == 0).all() and not valid[0].any()
        # Samples past a row's length must not matter: poison them and get the same answer.
        poisoned = data.clone()
        for b in range(B):
            poisoned[b, int(lengths[b]) :] = float("nan")
        out2 = robocache.resample(poisoned, src, tgt, mode=mode, src_lengths=lengths, out_of_range=oor)
        torch.testing.assert_close(out2, out, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("device", devices())
def test_unbatched_and_shared_times(device):
    g = torch.Generator().manual_seed(3)
    data = torch.randn(40, 6, generator=g).to(device)
    src = sorted_times(1, 40, torch.float32, g)[0].to(device)
    tgt = targets_around(src[None].cpu(), 25, g)[0].to(device)
    out = robocache.resample(data, src, tgt)
    assert out.shape == (25, 6)
    batched = robocache.resample(data[None].expand(3, 40, 6), src, tgt)
    for b in range(3):
        torch.testing.assert_close(batched[b], out, rtol=0, atol=0)
    ref, _ = resample_ref(data.double(), src, tgt)
    assert_close_to_ref(out, ref, torch.float32)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("mode", ["linear", "previous", "nearest"])
def test_exact_hits_are_bit_exact(mode, device):
    g = torch.Generator().manual_seed(11)
    data = torch.randn(2, 9, 5, generator=g).to(device)
    src = torch.arange(9, dtype=torch.float32).expand(2, 9).to(device)
    data[:, 4] = float("nan")  # a NaN neighbour must not leak into exact hits on samples 3 and 5
    tgt = torch.tensor([[3.0, 5.0, 0.0, 8.0], [5.0, 3.0, 8.0, 0.0]], device=device)
    out = robocache.resample(data, src, tgt, mode=mode)
    idx = tgt.long()
    expect = torch.stack([data[b, idx[b]] for b in range(2)])
    assert torch.equal(out, expect)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("time_dtype", [torch.float32, torch.float64, torch.int64])
@pytest.mark.parametrize("S", [700, 2500])
def test_search_on_irregular_clocks(S, time_dtype, device):
    """The search starts where a uniform clock would put the target and gallops from there: clocks far from
    uniform (a burst of samples, then long gaps; runs of duplicates; a stall) must give the bisection's
    index, i.e. "previous" returns the row of the last sample at or before each target, as searchsorted says.
    On CUDA, rows of 700 are staged in shared memory and rows of 2500 are searched in global memory; the second
    half of the targets is sorted, as a tile's targets usually are."""
    g = torch.Generator().manual_seed(12)
    n_sparse = S // 7
    burst = torch.sort(torch.rand(S - n_sparse, generator=g, dtype=torch.float64) * 1e-3).values
    sparse = torch.sort(torch.rand(n_sparse, generator=g, dtype=torch.float64) * 1e3).values + 1.0
    half = n_sparse // 2
    rows = [torch.cat([burst, sparse]), torch.cat([sparse[:half] - 2e3, burst, sparse[half:]])]
    stall = torch.arange(S, dtype=torch.float64)
    stall[S * 2 // 7 : S * 5 // 7] = stall[S * 2 // 7]  # duplicates
    rows.append(stall)
    rows.append(torch.cumsum(torch.rand(S, generator=g, dtype=torch.float64) ** 8 * 10, 0))  # heavy-tailed gaps
    src64 = torch.stack(rows)
    if time_dtype == torch.int64:
        src64 = (src64 * 1e6).round()
    elif time_dtype == torch.float32:  # values float32 can hold exactly, still sorted
        src64 = src64.float().double()
    B = src64.shape[0]
    picks = torch.randint(0, S, (B, 300), generator=g)
    tgt64 = torch.cat([src64.gather(1, picks),  # exact hits, duplicates included
                       src64.min(1, keepdim=True).values + torch.rand(B, 300, generator=g, dtype=torch.float64)
                       * (src64.max(1, keepdim=True).values - src64.min(1, keepdim=True).values)], 1)
    tgt64 = torch.cat([tgt64, tgt64.sort(1).values], 1)
    tgt64 = tgt64.round() if time_dtype == torch.int64 else tgt64.to(time_dtype).double()
    src, tgt = src64.to(device, time_dtype), tgt64.to(device, time_dtype)
    data = torch.arange(S, dtype=torch.float32).expand(B, S).unsqueeze(-1).contiguous().to(device)
    out = robocache.resample(data, src, tgt, mode="previous")
    left = torch.searchsorted(src64, tgt64, right=True) - 1
    assert torch.equal(out[..., 0].cpu(), left.clamp(min=0).float())


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("time_dtype", TIME_DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("S", [2000, 3000])
def test_long_rows_on_drifting_clocks(S, mode, time_dtype, device):
    """Rows of S samples whose clock drifts from uniform as a random walk (the bench's clocks; where the uniform
    clock's first guess is ~10 samples off). On CUDA rows of 2000 are staged in shared memory (8 copies per
    thread), rows of 3000 are searched in global memory. Sorted targets over the range and past both ends, ragged
    lengths down to 0-3 samples, a tolerance mask; against the oracle."""
    g = torch.Generator().manual_seed(31)
    B, T, D = 6, 517, 8
    seconds = torch.cumsum(0.5 + torch.rand(B, S, generator=g, dtype=torch.float64), 1) * 1e-3
    tgt_s = torch.sort(torch.rand(B, T, generator=g, dtype=torch.float64), 1).values * (S * 1.1e-3) - 0.05
    data = torch.randn(B, S, D, generator=g, dtype=torch.float64)
    lengths = torch.tensor([S, 0, 1, 3, 1234, S - 1])
    kw = dict(mode=mode, src_lengths=lengths.to(device), tolerance=0.4e-3 * clock_units(time_dtype))
    out, valid, ref, ref_valid = run_both(data.to(device, torch.float32), to_clock(seconds, time_dtype).to(device),
                                          to_clock(tgt_s, time_dtype).to(device), **kw)
    assert torch.equal(valid.cpu(), ref_valid.cpu())
    assert_close_to_ref(out, ref, torch.float32)


@pytest.mark.parametrize("device", devices())
def test_duplicates_nearest_halfway_and_nan_targets(device):
    data = torch.tensor([[[0.0], [1.0], [2.0], [3.0]]], device=device)
    src = torch.tensor([[0.0, 1.0, 1.0, 2.0]], device=device)  # a duplicated timestamp: the last one wins
    tgt = torch.tensor([[1.0, 0.5, 1.5, float("nan"), -1.0, 3.0]], device=device)
    out, valid = robocache.resample(data, src, tgt, mode="nearest", return_mask=True)
    assert out[0, :3, 0].tolist() == [2.0, 0.0, 2.0]  # hit -> last duplicate; halfway -> earlier sample
    assert torch.isnan(out[0, 3, 0])
    assert out[0, 4:, 0].tolist() == [0.0, 3.0]  # held ends
    assert valid[0].tolist() == [True, True, True, False, False, False]
    lin = robocache.resample(data, src, tgt, mode="linear")
    assert lin[0, :3, 0].tolist() == [2.0, 0.5, 2.5]


@pytest.mark.parametrize("device", devices())
def test_out_of_range_policies(device):
    data = torch.tensor([[[1.0], [3.0], [4.0]]], device=device)
    src = torch.tensor([[0.0, 1.0, 2.0]], device=device)
    tgt = torch.tensor([[-1.0, 0.5, 3.0]], device=device)
    hold = robocache.resample(data, src, tgt)
    ext = robocache.resample(data, src, tgt, out_of_range="extrapolate")
    zero = robocache.resample(data, src, tgt, out_of_range="zero")
    assert hold[0, :, 0].tolist() == [1.0, 2.0, 4.0]
    assert ext[0, :, 0].tolist() == [-1.0, 2.0, 5.0]
    assert zero[0, :, 0].tolist() == [0.0, 2.0, 0.0]
    prev = robocache.resample(data, src, tgt, mode="previous", out_of_range="extrapolate")
    assert prev[0, :, 0].tolist() == [1.0, 1.0, 4.0]  # only linear extrapolates


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("mode", ["linear", "previous", "nearest", "slerp"])
def test_tolerance_mask(mode, device):
    # samples at 0, 1, 5 (a dropout between 1 and 5); tolerance 0.6
    data = torch.nn.functional.normalize(torch.randn(1, 3, 4, dtype=torch.float64), dim=-1).to(device)
    src = torch.tensor([[0.0, 1.0, 5.0]], dtype=torch.float64, device=device)
    tgt = torch.tensor([[0.5, 1.5, 3.0, 4.6, 5.0, 5.5]], dtype=torch.float64, device=device)
    _, valid = robocache.resample(data, src, tgt, mode=mode, tolerance=0.6, return_mask=True)
    if mode == "previous":
        expect = [True, True, False, False, True, False]
    else:
        expect = [True, True, False, True, True, False]
    assert valid[0].tolist() == expect


@pytest.mark.parametrize("device", devices())
def test_slerp_unit_outputs_and_shortest_arc(device):
    import math

    angle = math.pi / 2
    q0 = torch.tensor([0.0, 0.0, 0.0, 1.0])
    q1 = torch.tensor([0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)])  # 90 degrees about z
    data = torch.stack([q0, -q1])[None].to(device)  # -q1: same rotation, the long way round
    src = torch.tensor([[0.0, 1.0]], device=device)
    tgt = torch.tensor([[0.5, 0.0, 1.0]], device=device)
    out = robocache.resample(data, src, tgt, mode="slerp")
    half = torch.tensor([0.0, 0.0, math.sin(angle / 4), math.cos(angle / 4)], device=device)
    torch.testing.assert_close(out[0, 0], half, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(1, 3, device=device), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("time_dtype", [torch.int64, torch.float64])
def test_epoch_scale_clocks(time_dtype, device):
    """Nanosecond (1.7e18) and second (1.7e9) epoch clocks 1 ms apart give the results of clocks from 0."""
    g = torch.Generator().manual_seed(5)
    data = torch.randn(2, 50, 3, generator=g, dtype=torch.float64).to(device)
    if time_dtype == torch.int64:
        base, step = 1_700_000_000_000_000_000, 1_000_000
        offsets = torch.arange(50, dtype=torch.int64) * step
        tgt_off = (torch.rand(2, 40, generator=g, dtype=torch.float64) * 49 * step).round().long()
        rtol = 0
    else:
        base, step = 1_700_000_000.0, 1e-3
        offsets = torch.arange(50, dtype=torch.float64) * step
        tgt_off = torch.rand(2, 40, generator=g, dtype=torch.float64) * 49 * step
        rtol = 1e-3  # the inputs themselves are quantised to 2.4e-7 s at this scale: 2.4e-4 of a step
    src0, tgt0 = offsets.expand(2, 50).to(device), tgt_off.to(device)
    out0 = robocache.resample(data, src0, tgt0)
    out_epoch = robocache.resample(data, src0 + base, tgt0 + base)
    torch.testing.assert_close(out_epoch, out0, rtol=rtol, atol=rtol)
    assert (out_epoch - out0).abs().max() <= (0 if time_dtype == torch.int64 else 1e-3)


# ---- gradients -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("out_of_range", OUT_OF_RANGE)
@pytest.mark.parametrize("mode", ["linear", "previous", "nearest"])
def test_gradcheck(mode, out_of_range, device):
    g = torch.Generator().manual_seed(13)
    data = torch.randn(2, 7, 3, generator=g, dtype=torch.float64).to(device).requires_grad_()
    src = sorted_times(2, 7, torch.float64, g, duplicates=False).to(device)
    tgt = (targets_around(src.cpu(), 9, g, hit_fraction=0.0)).to(device).requires_grad_()
    lengths = torch.tensor([7, 4], device=device)

    def fn(d, t):
        return robocache.resample(d, src, t, mode=mode, out_of_range=out_of_range, src_lengths=lengths)

    torch.autograd.gradcheck(fn, (data, tgt), eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("device", devices())
def test_gradients_shared_targets_and_low_precision(device):
    g = torch.Generator().manual_seed(17)
    src = sorted_times(1, 12, torch.float32, g, duplicates=False)[0].to(device)
    tgt = targets_around(src[None].cpu(), 6, g, hit_fraction=0.0)[0].to(device).requires_grad_()
    data = torch.randn(3, 12, 4, generator=g).to(device=device, dtype=torch.bfloat16).requires_grad_()
    out = robocache.resample(data, src, tgt)
    w = torch.randn(out.shape, generator=g).to(device)
    (out.float() * w).sum().backward()
    d64 = data.detach().double().requires_grad_()
    t64 = tgt.detach().double().requires_grad_()
    ref, _ = resample_ref(d64, src.double(), t64)
    (ref * w.double()).sum().backward()
    torch.testing.assert_close(data.grad.double(), d64.grad, rtol=2e-2, atol=2e-2)
    assert tgt.grad.shape == tgt.shape
    torch.testing.assert_close(tgt.grad.double(), t64.grad, rtol=2e-2, atol=2e-2 * t64.grad.abs().max().item())


@pytest.mark.parametrize("device", devices())
def test_learns_time_offset(device):
    """A camera clock runs 37 ms behind the joint clock; gradient descent on the offset recovers it."""
    true_offset = 0.037
    t_joint = torch.arange(0, 2.0, 0.002, dtype=torch.float64, device=device)  # 500 Hz
    signal = torch.stack([torch.sin(2 * torch.pi * 1.3 * t_joint), torch.cos(2 * torch.pi * 0.7 * t_joint)], -1)
    t_cam = torch.arange(0.2, 1.8, 1 / 30, dtype=torch.float64, device=device)  # 30 Hz
    observed = robocache.resample(signal, t_joint, t_cam + true_offset)
    offset = torch.zeros((), dtype=torch.float64, device=device, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=5e-3)
    for _ in range(300):
        opt.zero_grad()
        loss = (robocache.resample(signal, t_joint, t_cam + offset) - observed).pow(2).mean()
        loss.backward()
        opt.step()
    assert abs(offset.item() - true_offset) < 1e-3, offset.item()


@pytest.mark.parametrize("device", devices())
def test_slerp_gradient_raises_and_no_double_backward(device):
    data = torch.randn(1, 3, 4, device=device, requires_grad=True)
    src = torch.tensor([0.0, 1.0, 2.0], device=device)
    tgt = torch.tensor([0.5], device=device, requires_grad=True)
    with pytest.raises(NotImplementedError, match="resample: mode='slerp'"):
        robocache.resample(data, src, tgt, mode="slerp").sum().backward()
    out = robocache.resample(data, src, tgt)
    (grad,) = torch.autograd.grad(out.sum(), data, create_graph=True)
    with pytest.raises(Exception, match="double backward"):
        grad.sum().backward()


# ---- bad inputs ------------------------------------------------------------------------------------------


def _bad_cases(device):
    d = torch.randn(2, 5, 3, device=device)
    s = torch.arange(5.0, device=device).expand(2, 5)
    t = torch.rand(2, 4, device=device)
    other = "cpu" if device != "cpu" else "meta"
    return [
        ("rank", (torch.randn(5, device=device), s, t), {}, ValueError, "data"),
        ("4d", (torch.randn(2, 5, 3, 1, device=device), s, t), {}, ValueError, "data"),
        ("src_len", (d, s[:, :4], t), {}, ValueError, "src_times"),
        ("src_batch", (d, torch.arange(5.0, device=device).expand(3, 5), t), {}, ValueError, "src_times"),
        ("tgt_batch", (d, s, torch.rand(3, 4, device=device)), {}, ValueError, "tgt_times"),
        ("int_data", (d.long(), s, t), {}, TypeError, "data"),
        ("int32_times", (d, s.int(), t.int()), {}, TypeError, "src_times"),
        ("mixed_times", (d, s, t.double()), {}, TypeError, "tgt_times"),
        ("mode", (d, s, t), dict(mode="cubic"), ValueError, "mode"),
        ("oor", (d, s, t), dict(out_of_range="wrap"), ValueError, "out_of_range"),
        ("slerp_D", (d, s, t), dict(mode="slerp"), ValueError, "slerp"),
        ("tolerance", (d, s, t), dict(tolerance=-1.0), ValueError, "tolerance"),
        ("tolerance_type", (d, s, t), dict(tolerance="1"), TypeError, "tolerance"),
        ("lengths_shape", (d, s, t), dict(src_lengths=torch.tensor([5], device=device)), ValueError, "src_lengths"),
        ("lengths_dtype", (d, s, t), dict(src_lengths=torch.tensor([5, 5], device=device).int()), TypeError, "src_lengths"),
        ("data_type", ("x", s, t), {}, TypeError, "data"),
        ("device", (d, s.to(other), t), {}, ValueError, "src_times"),
    ]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("case", range(17))
def test_bad_inputs(case, device):
    name, args, kwargs, exc, word = _bad_cases(device)[case]
    with pytest.raises(exc, match=rf"^resample: .*{word}"):
        robocache.resample(*args, **kwargs)


def test_bad_lengths_values_cpu():
    d, s, t = torch.randn(2, 5, 3), torch.arange(5.0), torch.rand(4)
    with pytest.raises(ValueError, match=r"^resample: expected every src_lengths value in \[0, 5\]"):
        robocache.resample(d, s, t, src_lengths=torch.tensor([6, 2]))


@pytest.mark.parametrize("device", devices())
def test_unsorted_times_do_not_crash_and_debug_mode_raises(device):
    d = torch.randn(2, 6, 3, device=device)
    s = torch.tensor([0.0, 2.0, 1.0, 3.0, 5.0, 4.0], device=device)
    t = torch.linspace(-1, 6, 9, device=device)
    out = robocache.resample(d, s, t)  # unspecified values, but no crash and a full output
    assert out.shape == (2, 9, 3)
    code = (
        "import torch, robocache\n"
        f"d = torch.randn(2, 6, 3, device='{device}')\n"
        f"s = torch.tensor([0.0, 2.0, 1.0, 3.0, 5.0, 4.0], device='{device}')\n"
        "try:\n"
        "    robocache.resample(d, s, s)\n"
        "except ValueError as e:\n"
        "    print('RAISED', e)\n"
    )
    env = dict(os.environ, ROBOCACHE_DEBUG="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "RAISED resample: ROBOCACHE_DEBUG found source times that decrease" in proc.stdout, proc.stderr


# ---- composability ---------------------------------------------------------------------------------------


def _make_inputs(batch, device):
    g = torch.Generator().manual_seed(batch)
    data = torch.randn(batch, 33, 12, generator=g).to(device)
    src = sorted_times(batch, 33, torch.float32, g).to(device)
    tgt = targets_around(src.cpu(), 17, g).to(device)
    lengths = torch.randint(1, 34, (batch,), generator=g).to(device)
    return data, src, tgt, lengths


CASE = OpCase(
    name="resample",
    op=torch.ops.robocache.resample.default,
    fn=lambda d, s, t, n: robocache.resample(d, s, t, src_lengths=n, tolerance=1e-3, return_mask=True),
    make_inputs=_make_inputs,
    op_args=lambda x: ((x[0], x[1], x[2], "linear", x[3], 1e-3, "hold"), {}),
    batch_dims=(0, 0, 0, 0),
    grad_inputs=(0, 2),
)


@pytest.mark.slow
@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("check", CHECKS)
def test_composability(check, device, tmp_path):
    run_check(check, CASE, device, tmp_path)
