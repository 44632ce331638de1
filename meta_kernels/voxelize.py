"""Fake kernels of robocache::voxelize and robocache::_voxelize_backward: shapes and dtypes only.

The output shape depends only on the input shapes and the non-tensor arguments, so it is exact."""

import ctypes
import math

import torch

_MODES = ("count", "occupancy", "sum", "mean", "max")
_FEATURE_MODES = ("sum", "mean", "max")
_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_INT64_MAX = 2**63 - 1


def _f32(x: float) -> float:
    """x rounded to float32 the way C++ static_cast<float> does (overflow gives inf)."""
    return ctypes.c_float(x).value


def check_voxelize_args(points, features, grid_min, voxel_size, grid_size, mode, lengths, op="voxelize"):
    """The C++ checks of ops_cuda/voxelize.cpp (same order, messages and exception types). Returns (B, N, F)."""
    if mode not in _MODES:
        raise ValueError(f"{op}: expected mode to be one of 'count', 'occupancy', 'sum', 'mean', 'max', got {mode!r}")
    torch._check_value(
        points.dim() == 3 and points.shape[-1] == 3,
        lambda: f"{op}: expected points of shape [B,N,3], got shape {tuple(points.shape)}",
    )
    if points.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: expected points to be float32, float64, float16 or bfloat16, got {points.dtype}")
    B, N = points.shape[0], points.shape[1]
    for name, values in (("grid_min", grid_min), ("voxel_size", voxel_size), ("grid_size", grid_size)):
        if len(values) != 3:
            raise ValueError(f"{op}: expected {name} to have 3 values, got {len(values)}")
    if not all(math.isfinite(v) for v in grid_min):
        raise ValueError(f"{op}: expected finite grid_min values, got {list(grid_min)}")
    if not all(math.isfinite(v) and v > 0 for v in voxel_size):
        raise ValueError(f"{op}: expected voxel_size values that are finite and > 0, got {list(voxel_size)}")
    if not all(v > 0 for v in grid_size):
        raise ValueError(f"{op}: expected grid_size values > 0, got {list(grid_size)}")
    if points.dtype != torch.float64:
        ok = all(math.isfinite(_f32(v)) for v in grid_min) and all(
            _f32(v) > 0 and math.isfinite(_f32(v)) for v in voxel_size
        )
        if not ok:
            raise ValueError(
                f"{op}: grid_min and voxel_size must be finite and voxel_size > 0 in float32 (the arithmetic type of "
                f"{points.dtype} points), got grid_min {list(grid_min)}, voxel_size {list(voxel_size)}"
            )
    F = 0
    if mode in _FEATURE_MODES:
        if features is None:
            raise ValueError(f"{op}: mode='{mode}' needs features of shape [B,N,F], got None")
        torch._check_value(
            features.dim() == 3,
            lambda: f"{op}: expected features of shape [B,N,F], got shape {tuple(features.shape)}",
        )
        torch._check_value(
            features.shape[0] == B and features.shape[1] == N,
            lambda: (
                f"{op}: expected features of shape [{B}, {N}, F] to match points, got shape {tuple(features.shape)}"
            ),
        )
        if features.device != points.device:
            raise ValueError(
                f"{op}: expected features on the same device as points ({points.device}), got {features.device}"
            )
        if features.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"{op}: expected features to be float32, float64, float16 or bfloat16, got {features.dtype}"
            )
        F = features.shape[2]
    if lengths is not None:
        if lengths.device != points.device:
            raise ValueError(
                f"{op}: expected lengths on the same device as points ({points.device}), got {lengths.device}"
            )
        if lengths.dtype != torch.int64:
            raise TypeError(f"{op}: expected lengths to be int64, got {lengths.dtype}")
        torch._check_value(
            lengths.dim() == 1 and lengths.shape[0] == B,
            lambda: f"{op}: expected lengths of shape [{B}], got shape {tuple(lengths.shape)}",
        )
    X, Y, Z = grid_size
    # Mirrors the C++ overflow test; B and F may be symbolic, so only a concrete product is tested.
    if isinstance(B, int) and isinstance(F, int) and X * Y * Z * max(B, 1) * max(F, 1) >= _INT64_MAX:
        raise ValueError(
            f"{op}: the output grid has too many elements for int64 (B={B}, grid_size {list(grid_size)}, F={F})"
        )
    if X * Y * Z >= _INT64_MAX:
        raise ValueError(f"{op}: the output grid has too many elements for int64 (grid_size {list(grid_size)})")
    return B, N, F


def output_shape(B, F, grid_size, mode, channels_first):
    X, Y, Z = grid_size
    if mode not in _FEATURE_MODES:
        return (B, X, Y, Z)
    return (B, F, X, Y, Z) if channels_first else (B, X, Y, Z, F)


@torch.library.register_fake("robocache::voxelize")
def _voxelize_fake(
    points, features, grid_min, voxel_size, grid_size, mode="count", lengths=None, deterministic=False,
    channels_first=False,
):
    B, _, F = check_voxelize_args(points, features, grid_min, voxel_size, grid_size, mode, lengths)
    shape = output_shape(B, F, grid_size, mode, channels_first)
    if mode == "count":
        return points.new_empty(shape, dtype=torch.int32)
    if mode == "occupancy":
        return points.new_empty(shape, dtype=torch.bool)
    return features.new_empty(shape)


@torch.library.register_fake("robocache::_voxelize_backward")
def _voxelize_backward_fake(
    grad_out, points, features, out, grid_min, voxel_size, grid_size, mode, lengths, channels_first
):
    op = "_voxelize_backward"
    B, _, F = check_voxelize_args(points, features, grid_min, voxel_size, grid_size, mode, lengths, op=op)
    if mode not in _FEATURE_MODES:
        raise ValueError(f"{op}: only modes 'sum', 'mean' and 'max' have a gradient")
    shape = output_shape(B, F, grid_size, mode, channels_first)
    torch._check_value(
        tuple(grad_out.shape) == shape,
        lambda: f"{op}: expected grad_out of shape {list(shape)}, got {tuple(grad_out.shape)}",
    )
    if mode == "max":
        torch._check_value(
            out is not None and tuple(out.shape) == shape,
            lambda: f"{op}: mode='max' needs the forward output of shape {list(shape)}",
        )
    return features.new_empty(features.shape)
