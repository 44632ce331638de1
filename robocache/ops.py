"""The public, typed API. Each function is a thin wrapper over `torch.ops.robocache.<op>`: it normalises
arguments (unbatched inputs, Python scalars) and leaves every check that needs the tensors to the op, so
an eager call costs one dispatcher call."""

from __future__ import annotations

import torch
from torch import Tensor

_resample_op = torch.ops.robocache.resample.default


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
