"""Float64 oracle of `resample` (SPEC.md), written with searchsorted / gather / where.

Vectorised over the batch (ragged rows are handled by padding their tails with +inf), so it also serves
as the eager and torch.compile baseline in the benchmarks. Distances and weights are float64 whatever
`compute_dtype` is; int64 differences are exact before conversion.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _diff(a: Tensor, b: Tensor) -> Tensor:
    """a - b as float64; int64 clocks are subtracted exactly first."""
    if a.dtype == torch.int64:
        return (a - b).to(torch.float64)
    return a.to(torch.float64) - b.to(torch.float64)


def _normalize(q: Tensor) -> Tensor:
    n = torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return torch.where(n > 0, q / torch.where(n > 0, n, torch.ones_like(n)), q)


def _slerp(a: Tensor, b: Tensor, w: Tensor) -> Tensor:
    """Shortest-arc slerp of quaternions [..., 4] with weights [..., 1]; nlerp when dot > 0.9995."""
    dot = (a * b).sum(-1, keepdim=True)
    b = torch.where(dot < 0, -b, b)
    dot = dot.abs()
    close = dot > 0.9995
    theta0 = torch.acos(dot.clamp(max=1.0))
    sin0 = torch.where(close, torch.ones_like(theta0), torch.sin(theta0))
    s0 = torch.where(close, 1 - w, torch.sin((1 - w) * theta0) / sin0)
    s1 = torch.where(close, w, torch.sin(w * theta0) / sin0)
    return _normalize(s0 * a + s1 * b)


def resample_ref(
    data: Tensor,
    src_times: Tensor,
    tgt_times: Tensor,
    mode: str = "linear",
    src_lengths: Tensor | None = None,
    tolerance: float | None = None,
    out_of_range: str = "hold",
    compute_dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Returns (out [B,T,D] in compute_dtype, valid [B,T] bool); unbatched [S,D] gives [T,D], [T]."""
    unbatched = data.dim() == 2
    if unbatched:
        data = data.unsqueeze(0)
    B, S, D = data.shape
    src = src_times.expand(B, S) if src_times.dim() == 1 else src_times
    tgt = tgt_times.expand(B, tgt_times.shape[-1]) if tgt_times.dim() == 1 else tgt_times
    T = tgt.shape[1]
    dev = data.device
    L = src_lengths if src_lengths is not None else torch.full((B,), S, dtype=torch.int64, device=dev)
    v = data.to(compute_dtype)

    if S == 0 or B * T == 0:
        out = torch.zeros(B, T, D, dtype=compute_dtype, device=dev)
        valid = torch.zeros(B, T, dtype=torch.bool, device=dev)
        return (out[0], valid[0]) if unbatched else (out, valid)

    # left = last index with s <= x among the real samples (tails padded with the largest time).
    big = torch.iinfo(torch.int64).max if src.dtype == torch.int64 else float("inf")
    pad = torch.arange(S, device=dev)[None, :] >= L[:, None]
    padded = src.masked_fill(pad, big).contiguous()
    last = (L - 1).clamp(min=0)[:, None].expand(B, T)
    left = torch.searchsorted(padded, tgt.contiguous(), right=True) - 1
    left = torch.minimum(left, last)

    def s_at(i: Tensor) -> Tensor:
        return torch.gather(src, 1, i.clamp(0, S - 1))

    x = tgt
    is_nan = x != x
    empty = (L == 0)[:, None].expand(B, T)
    below = left < 0
    above = (left == last) & (x != s_at(last)) & ~below
    in_range = ~below & ~above & ~empty & ~is_nan

    # Inside the range.
    l_idx = left.clamp(min=0)
    has_right = l_idx + 1 < L[:, None]
    r_idx = torch.where(has_right, l_idx + 1, l_idx)
    d_left = _diff(x, s_at(l_idx))
    d_right = torch.where(has_right, _diff(s_at(r_idx), x), torch.zeros_like(d_left))
    seg_len = _diff(s_at(r_idx), s_at(l_idx))
    exact = (x == s_at(l_idx)) | ~has_right
    interp = mode in ("linear", "slerp")
    lerp = in_range & ~exact & interp
    weight = torch.where(lerp, d_left / torch.where(lerp, seg_len, torch.ones_like(seg_len)), torch.zeros_like(d_left))
    i0 = l_idx
    if mode == "nearest":
        i0 = torch.where(in_range & has_right & (d_right < d_left), r_idx, l_idx)
    i1 = torch.where(lerp, r_idx, i0)

    # Outside the range.
    outside = (below | above) & ~empty & ~is_nan
    hold_idx = torch.where(below, torch.zeros_like(left), last)
    i0 = torch.where(outside, hold_idx, i0)
    i1 = torch.where(outside, hold_idx, i1)
    if out_of_range == "extrapolate" and mode == "linear":
        a = torch.where(below, torch.zeros_like(left), (L[:, None] - 2).expand(B, T)).clamp(min=0)
        end_len = _diff(s_at(a + 1), s_at(a))
        extrap = outside & (L[:, None] >= 2) & (end_len > 0)
        w_ex = _diff(x, s_at(a)) / torch.where(extrap, end_len, torch.ones_like(end_len))
        i0 = torch.where(extrap, a, i0)
        i1 = torch.where(extrap, a + 1, i1)
        weight = torch.where(extrap, w_ex, weight)
        lerp = lerp | extrap

    # Values.
    def rows(i: Tensor) -> Tensor:
        return torch.gather(v, 1, i[..., None].expand(B, T, D))

    v0, v1 = rows(i0), rows(i1)
    w = weight.to(compute_dtype)[..., None]
    if mode == "slerp":
        q0, q1 = v0.reshape(B, T, D // 4, 4), v1.reshape(B, T, D // 4, 4)
        out = torch.where(lerp[..., None, None], _slerp(q0, q1, w[..., None]), _normalize(q0)).reshape(B, T, D)
    else:
        out = torch.where(lerp[..., None], v0 + w * (v1 - v0), v0)
    zero = empty | (outside & (out_of_range == "zero"))
    out = torch.where(zero[..., None], torch.zeros_like(out), out)
    out = torch.where((is_nan & ~empty)[..., None], torch.full_like(out, float("nan")), out)

    # Validity: inside the range, and the sample(s) used within tolerance.
    valid = in_range
    if tolerance is not None:
        nearest_d = torch.where(has_right, torch.minimum(d_left, d_right), d_left)
        used = d_left if mode == "previous" else nearest_d
        valid = valid & (used <= tolerance)
    return (out[0], valid[0]) if unbatched else (out, valid)
