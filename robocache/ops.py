"""The public, typed API. Each function is a thin wrapper over `torch.ops.robocache.<op>`: it normalises
arguments (unbatched inputs, Python scalars) and leaves every check that needs the tensors to the op, so
an eager call costs one dispatcher call."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_resample_op = torch.ops.robocache.resample.default
_voxelize_op = torch.ops.robocache.voxelize.default


def _require_tensor(op: str, name: str, value, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: expected {name} to be a torch.Tensor, got {type(value).__name__}")


def resample(
    data: Tensor,
    src_times: Tensor,
    tgt_times: Tensor,
    *,
    mode: str = "linear",
    src_lengths: Tensor | None = None,
    tolerance: float | None = None,
    out_of_range: str = "hold",
    return_mask: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Resample batched trajectories onto new timestamps.

    Args:
        data: ``Tensor[B, S, D]`` (or ``Tensor[S, D]`` for one trajectory), float32/float64/float16/bfloat16.
        src_times: ``Tensor[B, S]`` or ``Tensor[S]`` (shared by all rows); float32, float64 or int64,
            non-decreasing within each row's real length.
        tgt_times: ``Tensor[B, T]`` or ``Tensor[T]``, same dtype as ``src_times``, any order.
        mode: ``"linear"``, ``"previous"`` (zero-order hold), ``"nearest"`` or ``"slerp"`` (quaternion
            groups of 4 columns, x y z w).
        src_lengths: optional ``Tensor[B]`` int64: only the first ``src_lengths[b]`` samples of row b are real.
        tolerance: optional maximum distance (in time units) to the sample(s) used for ``valid``.
        out_of_range: ``"hold"`` (default), ``"extrapolate"`` (linear mode) or ``"zero"``.
        return_mask: also return ``valid: Tensor[B, T]`` (bool).

    Returns:
        ``Tensor[B, T, D]`` in ``data``'s dtype (``Tensor[T, D]`` for unbatched input), and ``valid`` if asked.

    Example:
        >>> joints = torch.randn(4, 500, 7)                       # 500 Hz joint states
        >>> t_src = torch.arange(500) / 500.0                      # seconds
        >>> t_cam = torch.arange(30) / 30.0                        # 30 Hz camera frames
        >>> robocache.resample(joints, t_src, t_cam).shape
        torch.Size([4, 30, 7])
    """
    unbatched = isinstance(data, Tensor) and data.dim() == 2
    if unbatched:
        _require_tensor("resample", "src_times", src_times)
        _require_tensor("resample", "tgt_times", tgt_times)
        if src_times.dim() != 1 or tgt_times.dim() != 1 or src_lengths is not None:
            raise ValueError(
                "resample: unbatched data [S,D] expects src_times [S], tgt_times [T] and no src_lengths, got "
                f"src_times {tuple(src_times.shape)}, tgt_times {tuple(tgt_times.shape)}"
            )
        data = data.unsqueeze(0)
    else:
        _require_tensor("resample", "data", data)
    if tolerance is not None:
        if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool):
            raise TypeError(f"resample: expected tolerance to be a float or None, got {type(tolerance).__name__}")
        tolerance = float(tolerance)
    if not isinstance(mode, str):
        raise TypeError(f"resample: expected mode to be a str, got {type(mode).__name__}")
    if not isinstance(out_of_range, str):
        raise TypeError(f"resample: expected out_of_range to be a str, got {type(out_of_range).__name__}")
    out, valid = _resample_op(data, src_times, tgt_times, mode, src_lengths, tolerance, out_of_range)
    if unbatched:
        out, valid = out.squeeze(0), valid.squeeze(0)
    return (out, valid) if return_mask else out


# ---- predecessor-compatible names --------------------------------------------------------------------


def resample_trajectories(source_data: Tensor, source_times: Tensor, target_times: Tensor) -> Tensor:
    """Predecessor name: ``resample(source_data, source_times, target_times)`` (linear, hold at the ends)."""
    return resample(source_data, source_times, target_times)


def resample_trajectories_cpu(source_data: Tensor, source_times: Tensor, target_times: Tensor) -> Tensor:
    """Predecessor name kept for old code; runs on whatever device the inputs are on."""
    return resample(source_data, source_times, target_times)


# ---- voxelize ----------------------------------------------------------------------------------------

_VOXEL_FEATURE_MODES = ("sum", "mean", "max")


def _is_real(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _three_floats(op: str, name: str, value, scalar_ok: bool) -> list[float]:
    if scalar_ok and _is_real(value):
        return [float(value)] * 3
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(_is_real(v) for v in value):
        what = "a float or a sequence of 3 floats" if scalar_ok else "a sequence of 3 floats"
        raise TypeError(f"{op}: expected {name} to be {what}, got {value!r}")
    if len(value) != 3:
        raise ValueError(f"{op}: expected {name} to have 3 values, got {len(value)}")
    return [float(v) for v in value]


def _three_ints(op: str, name: str, value) -> list[int]:
    ok = isinstance(value, Sequence) and not isinstance(value, str)
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{op}: expected {name} to be a sequence of 3 ints, got {value!r}")
    if len(value) != 3:
        raise ValueError(f"{op}: expected {name} to have 3 values, got {len(value)}")
    return [int(v) for v in value]


def voxelize(
    points: Tensor,
    features: Tensor | None = None,
    *,
    grid_min: Sequence[float],
    voxel_size: float | Sequence[float],
    grid_size: Sequence[int],
    mode: str = "count",
    lengths: Tensor | None = None,
    deterministic: bool | None = None,
    channels_first: bool = False,
) -> Tensor:
    """Scatter point clouds into dense voxel grids.

    Point p of a cloud lands in voxel ``floor((p - grid_min) / voxel_size)`` per axis, computed in float32
    (float64 for float64 points) with IEEE division, identically on CPU and CUDA. Points with a NaN/inf
    coordinate, outside the grid, or past their cloud's length are dropped.

    Args:
        points: ``Tensor[N, 3]`` (one cloud) or ``Tensor[B, N, 3]``; float32/float64/float16/bfloat16.
        features: ``Tensor[N, F]`` / ``Tensor[B, N, F]``, float; required for ``sum``, ``mean`` and
            ``max``, ignored otherwise.
        grid_min: the grid's lower corner (x, y, z).
        voxel_size: one float or 3 floats (x, y, z), all > 0.
        grid_size: voxels per axis (X, Y, Z), all > 0.
        mode: ``"count"`` (int32), ``"occupancy"`` (bool), ``"sum"``, ``"mean"`` or ``"max"`` (features' dtype,
            accumulated in float32, float64 for float64 features). Empty voxels are 0 in every mode.
        lengths: optional ``Tensor[B]`` int64: only the first ``lengths[b]`` points of cloud b are real
            (values are clamped to ``[0, N]``). Batched input only.
        deterministic: bitwise reproducible ``sum``/``mean`` on CUDA (sort by voxel, then reduce); ``None``
            follows ``torch.are_deterministic_algorithms_enabled()``. ``count``, ``occupancy`` and ``max``
            are always deterministic, and so is every mode on the CPU.
        channels_first: feature grids as ``[B, F, X, Y, Z]`` (ready for ``Conv3d``) instead of ``[B, X, Y, Z, F]``.

    Returns:
        ``Tensor[B, X, Y, Z]`` for count/occupancy, ``Tensor[B, X, Y, Z, F]`` or ``Tensor[B, F, X, Y, Z]``
        otherwise; one cloud gives the same without B. Gradients flow to ``features`` (sum, mean, max).

    Example:
        >>> pts = torch.rand(4, 10_000, 3) * 20 - 10               # 4 clouds in [-10, 10)^3
        >>> feats = torch.randn(4, 10_000, 8)
        >>> grid = robocache.voxelize(pts, feats, grid_min=(-10, -10, -10), voxel_size=0.25,
        ...                           grid_size=(80, 80, 80), mode="mean", channels_first=True)
        >>> grid.shape
        torch.Size([4, 8, 80, 80, 80])
    """
    op = "voxelize"
    _require_tensor(op, "points", points)
    _require_tensor(op, "features", features, optional=True)
    _require_tensor(op, "lengths", lengths, optional=True)
    if not isinstance(mode, str):
        raise TypeError(f"{op}: expected mode to be a str, got {type(mode).__name__}")
    if deterministic is not None and not isinstance(deterministic, bool):
        raise TypeError(f"{op}: expected deterministic to be a bool or None, got {type(deterministic).__name__}")
    if not isinstance(channels_first, bool):
        raise TypeError(f"{op}: expected channels_first to be a bool, got {type(channels_first).__name__}")
    gmin = _three_floats(op, "grid_min", grid_min, scalar_ok=False)
    vsize = _three_floats(op, "voxel_size", voxel_size, scalar_ok=True)
    gsize = _three_ints(op, "grid_size", grid_size)
    if deterministic is None:
        deterministic = torch.are_deterministic_algorithms_enabled()
    if mode not in _VOXEL_FEATURE_MODES:
        features = None  # ignored by count and occupancy
    unbatched = points.dim() == 2
    if unbatched:
        if lengths is not None:
            raise ValueError(
                f"{op}: lengths is for batched points [B,N,3]; got one cloud of shape {tuple(points.shape)}"
            )
        if features is not None and features.dim() != 2:
            raise ValueError(
                f"{op}: one cloud [N,3] expects features [N,F], got features of shape {tuple(features.shape)}"
            )
        points = points.unsqueeze(0)
        features = features.unsqueeze(0) if features is not None else None
    out = _voxelize_op(points, features, gmin, vsize, gsize, mode, lengths, deterministic, channels_first)
    return out.squeeze(0) if unbatched else out


def voxelize_pointcloud(
    points: Tensor,
    features: Tensor | None = None,
    grid_min: Sequence[float] = (-10.0, -10.0, -10.0),
    voxel_size: float | Sequence[float] = 0.1,
    grid_size: Sequence[int] = (128, 128, 128),
    mode: str = "occupancy",
) -> Tensor:
    """Predecessor name: ``voxelize`` with the predecessor's defaults and output dtypes (count and occupancy
    as int32, mean and max as float32), with its bugs fixed (x-first axes, true max for negative values).
    Feature grids are ``[..., X, Y, Z, F]``."""
    out = voxelize(points, features, grid_min=grid_min, voxel_size=voxel_size, grid_size=grid_size, mode=mode)
    return out.to(torch.int32) if mode in ("count", "occupancy") else out.to(torch.float32)
