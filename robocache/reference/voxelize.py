"""Float64 oracle of `voxelize` (SPEC.md), written with index_add_ / scatter_reduce_.

Voxel indices follow the spec exactly: floor((p - grid_min) / voxel_size) in float32 (float64 for float64
points), so the oracle assigns every point to the same voxel as the kernels. Dropped points (NaN/inf,
outside the grid, past their cloud's length) are routed to extra bins past the grid that are cut off at the
end, so there is no boolean indexing, no data-dependent shape and no host sync: the same code is the eager and
the torch.compile baseline of the benchmarks (pass compute_dtype=torch.float32 for what a user would
write). Accumulation happens in `compute_dtype`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

DUMP_BINS = 1024  # extra bins past the grid that receive dropped points (see voxelize_ref)


def _three(value, name: str) -> list:
    if isinstance(value, (int, float)):
        return [value] * 3
    values = list(value)
    if len(values) != 3:
        raise ValueError(f"voxelize_ref: expected {name} to have 3 values, got {len(values)}")
    return values


def voxel_indices(
    points: Tensor,
    grid_min: Sequence[float],
    voxel_size: float | Sequence[float],
    grid_size: Sequence[int],
    lengths: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(g [B,N] int64, valid [B,N] bool): g = b*V + (ix*Y + iy)*Z + iz for points [B,N,3]; 0 where invalid."""
    B, N, _ = points.shape
    dev = points.device
    X, Y, Z = (int(s) for s in grid_size)
    cdt = torch.float64 if points.dtype == torch.float64 else torch.float32
    lo = torch.tensor([float(v) for v in _three(grid_min, "grid_min")], dtype=cdt, device=dev)
    size = torch.tensor([float(v) for v in _three(voxel_size, "voxel_size")], dtype=cdt, device=dev)
    t = ((points.to(cdt) - lo) / size).to(torch.float64)  # exact widening of the float32 quotient
    dims = torch.tensor([X, Y, Z], dtype=torch.float64, device=dev)
    valid = ((t >= 0) & (t < dims)).all(dim=-1)  # NaN fails both tests; floor(t) < dim <=> t < dim
    if lengths is not None:
        valid = valid & (torch.arange(N, device=dev)[None, :] < lengths[:, None])
    i = torch.where(valid[..., None], t, torch.zeros_like(t)).floor().to(torch.int64)  # no huge -> int
    g = (i[..., 0] * Y + i[..., 1]) * Z + i[..., 2] + torch.arange(B, device=dev)[:, None] * (X * Y * Z)
    return torch.where(valid, g, torch.zeros_like(g)), valid


def voxelize_ref(
    points: Tensor,
    features: Tensor | None = None,
    *,
    grid_min: Sequence[float],
    voxel_size: float | Sequence[float],
    grid_size: Sequence[int],
    mode: str = "count",
    lengths: Tensor | None = None,
    channels_first: bool = False,
    compute_dtype: torch.dtype = torch.float64,
) -> Tensor:
    """count [B,X,Y,Z] int32, occupancy bool, sum/mean/max [B,X,Y,Z,F] (or [B,F,X,Y,Z]) in compute_dtype.

    One cloud [N,3] (features [N,F]) gives the same without the B dimension."""
    unbatched = points.dim() == 2
    if unbatched:
        points = points.unsqueeze(0)
        features = features.unsqueeze(0) if features is not None else None
    B, N, _ = points.shape
    X, Y, Z = (int(s) for s in grid_size)
    BV = B * X * Y * Z
    g, valid = voxel_indices(points, grid_min, voxel_size, grid_size, lengths)
    # Dropped points go to DUMP_BINS extra bins past the grid, spread by point index: with one extra bin,
    # a quarter of the benchmark's points hit one address, which serialises GPU atomics (torch.compile of
    # that version took 0.45 s at 16M points on the H100 against 7 ms eager; profiling/NOTES.md). Counts
    # are int32 (what the op returns), which also keeps Inductor on native atomics.
    flat = torch.arange(B * N, device=points.device)
    bins = torch.where(valid.reshape(-1), g.reshape(-1), BV + flat % DUMP_BINS)
    ones = torch.ones(B * N, dtype=torch.int32, device=points.device)
    count = torch.zeros(BV + DUMP_BINS, dtype=torch.int32, device=points.device).index_add_(0, bins, ones)
    count = count[:BV]

    if mode in ("count", "occupancy"):
        out = count if mode == "count" else count > 0
        out = out.reshape(B, X, Y, Z)
        return out[0] if unbatched else out
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"voxelize_ref: unknown mode {mode!r}")

    F = features.shape[-1]
    f = features.reshape(B * N, F).to(compute_dtype)
    if mode == "max":
        idx = bins[:, None].expand(B * N, F)
        acc = torch.zeros(BV + DUMP_BINS, F, dtype=compute_dtype, device=points.device)
        # include_self=False: a voxel nobody writes keeps its 0; amax propagates NaN.
        acc = acc.scatter_reduce_(0, idx, f, reduce="amax", include_self=False)
    else:
        acc = torch.zeros(BV + DUMP_BINS, F, dtype=compute_dtype, device=points.device).index_add_(0, bins, f)
    acc = acc[:BV]
    if mode == "mean":
        acc = acc / count.clamp(min=1).to(compute_dtype)[:, None]
    out = acc.reshape(B, X, Y, Z, F)
    if channels_first:
        out = out.permute(0, 4, 1, 2, 3)
    return out[0] if unbatched else out
