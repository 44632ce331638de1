"""The public, typed API. Each function is a thin wrapper over `torch.ops.robocache.<op>`: it normalises
arguments (unbatched inputs, Python scalars) and leaves every check that needs the tensors to the op, so
an eager call costs one dispatcher call."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

_resample_op = torch.ops.robocache.resample.default
_fuse_op = torch.ops.robocache.fuse.default
# fuse takes its out_dtype as a name (registration.cpp says why).
_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16", torch.bfloat16: "bfloat16"}
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
    if torch.compiler.is_compiling() or (
        torch.is_grad_enabled() and torch._C._any_requires_grad(data, src_times, tgt_times)
    ):
        out, valid = _resample_op(data, src_times, tgt_times, mode, src_lengths, tolerance, out_of_range)
    else:
        # Nothing needs a gradient: skip the Python autograd kernel's hop, exactly as its no-grad branch
        # does (it redispatches below autograd). Policies call this at hundreds of Hz.
        with torch._C._AutoDispatchBelowAutograd():
            out, valid = _resample_op(data, src_times, tgt_times, mode, src_lengths, tolerance, out_of_range)
    if unbatched:
        out, valid = out.squeeze(0), valid.squeeze(0)
    return (out, valid) if return_mask else out


# ---- fuse ------------------------------------------------------------------------------------------------

Streams = Sequence[tuple[Tensor, Tensor]] | Mapping[str, tuple[Tensor, Tensor]]


def _stream_pairs(streams) -> tuple[list, list, list | None]:
    """(data list, times list, names or None) from a sequence of pairs or a dict name -> pair."""
    names = None
    if type(streams) is list or type(streams) is tuple:  # the common case, before the slower ABC check
        pairs = streams
    elif isinstance(streams, Mapping):
        names = list(streams)
        pairs = list(streams.values())
    elif isinstance(streams, (list, tuple)):
        pairs = streams
    else:
        raise TypeError(
            f"fuse: expected streams to be a list of (data, times) pairs or a dict name -> pair, got {type(streams).__name__}"
        )
    if not pairs:
        raise ValueError("fuse: expected at least one stream, got none")
    data, times = [], []
    for pair in pairs:
        k = len(data)
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            where = repr(names[k]) if names else k
            raise TypeError(f"fuse: expected streams[{where}] to be a (data, times) pair, got {type(pair).__name__}")
        x, t = pair
        if not isinstance(x, Tensor) or not isinstance(t, Tensor):
            name, value = ("data", x) if not isinstance(x, Tensor) else ("times", t)
            raise TypeError(f"fuse: expected {name}[{k}] to be a torch.Tensor, got {type(value).__name__}")
        data.append(x)
        times.append(t)
    return data, times, names


def _per_stream(name: str, value, K: int, names: list | None, default, scalar_types: tuple) -> list:
    """One entry per stream from one value for all, a sequence of K, or (dict streams) a dict by name."""
    if value is None:
        return [default] * K
    if isinstance(value, scalar_types):
        return [value] * K
    if isinstance(value, Mapping):
        if names is None:
            raise TypeError(f"fuse: {name} given as a dict needs streams given as a dict")
        unknown = [n for n in value if n not in names]
        if unknown:
            raise ValueError(f"fuse: {name} names streams that do not exist: {unknown}; streams are {names}")
        return [value.get(n, default) for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != K:
            raise ValueError(f"fuse: expected one entry of {name} per stream ({K}), got {len(value)}")
        return list(value)
    raise TypeError(f"fuse: expected {name} to be one value, a list or a dict, got {type(value).__name__}")


def _common_dtype(data: list[Tensor]) -> torch.dtype | None:
    """fuse's default out_dtype: the streams' one dtype (None where the op will say what is wrong). Always passed
    as a concrete dtype: torch 2.11 drops arguments equal to their default before its tensor-list autograd wrapper
    counts them, and then rejects the backward's gradient list."""
    dtype = data[0].dtype
    for d in data:
        if d.dtype != dtype:
            dtypes = sorted({str(x.dtype) for x in data})
            raise TypeError(f"fuse: streams have different dtypes ({', '.join(dtypes)}); pass out_dtype")
    return dtype if dtype in _DTYPE_NAMES else None


def _tolerance_list(tolerances, K: int, names: list | None) -> list[float]:
    if tolerances is None:
        return [-1.0] * K  # the op's encoding of "no tolerance"
    tols = _per_stream("tolerances", tolerances, K, names, None, (int, float))
    out = []
    for k, tol in enumerate(tols):
        if tol is None:
            out.append(-1.0)  # the op's encoding of "no tolerance"
            continue
        if not isinstance(tol, (int, float)) or isinstance(tol, bool):
            raise TypeError(f"fuse: expected tolerances[{k}] to be a float or None, got {type(tol).__name__}")
        if not tol >= 0:
            raise ValueError(f"fuse: expected tolerances[{k}] >= 0, got {tol}")
        out.append(float(tol))
    return out


def fuse(
    streams: Streams,
    tgt_times: Tensor,
    *,
    modes: str | Sequence[str] | Mapping[str, str] | None = None,
    tolerances: float | Sequence[float | None] | Mapping[str, float | None] | None = None,
    src_lengths: Tensor | Sequence[Tensor | None] | Mapping[str, Tensor | None] | None = None,
    out_dtype: torch.dtype | None = None,
    return_mask: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Resample many streams (different rates, sizes and dtypes) onto one timeline, side by side.

    Stream k's columns of the output are exactly ``resample(data_k, times_k, tgt_times, mode=modes[k],
    src_lengths=src_lengths[k], tolerance=tolerances[k])`` (``out_of_range="hold"``), computed in float32
    (float64 for float64 data) from the stream's own dtype and rounded once to ``out_dtype``. On CUDA all
    streams are done in one kernel launch (up to 32 streams per launch; more streams take one launch per
    32), with no intermediate tensors.

    Args:
        streams: a list of ``(data, times)`` pairs, or a dict name -> pair (dict order is column order), with
            ``data: Tensor[B, S_k, D_k]`` (float32/float64/float16/bfloat16; S, D and dtype may differ per
            stream) and ``times: Tensor[B, S_k]`` or ``Tensor[S_k]`` (one time base shared by all rows),
            non-decreasing within each row's real length. All times and ``tgt_times`` share one dtype:
            float32, float64 or int64.
        tgt_times: ``Tensor[B, T]`` or ``Tensor[T]``, any order.
        modes: per stream ``"linear"`` (default), ``"previous"``, ``"nearest"`` or ``"slerp"``; one str for all,
            a list, or (dict streams) a dict by name (missing names get the default).
        tolerances: per stream maximum distance to the sample(s) used for ``valid`` (None: no test); one
            value, a list or a dict as for ``modes``.
        src_lengths: per stream optional ``Tensor[B]`` int64 (real samples per row); one tensor for all, a
            list or a dict.
        out_dtype: output dtype; default the streams' common dtype (required when their dtypes differ).
        return_mask: also return ``valid: Tensor[B, T, K]`` (bool), stream k's validity in ``valid[..., k]``.

    Returns:
        ``Tensor[B, T, sum D_k]`` (and ``valid``). ``fuse_slices(streams)`` gives each stream's column slice.

    Gradients flow to every stream's data (each stream's gradient in its own dtype; slerp streams have none
    and raise if asked; on CUDA they are accumulated with float atomics, so not bitwise deterministic).
    ``tgt_times`` gets no gradient here (asking raises): use ``resample`` per stream to learn a time offset.

    Example:
        >>> cam = torch.randn(8, 30, 512, dtype=torch.bfloat16)     # 30 Hz image features
        >>> joints = torch.randn(8, 500, 7)                         # 500 Hz joint states
        >>> t_cam, t_joint = torch.arange(30) / 30.0, torch.arange(500) / 500.0
        >>> streams = {"cam": (cam, t_cam), "joints": (joints, t_joint)}
        >>> obs = robocache.fuse(streams, torch.arange(50) / 50.0, out_dtype=torch.float32)
        >>> obs.shape, robocache.fuse_slices(streams)
        (torch.Size([8, 50, 519]), {'cam': slice(0, 512, None), 'joints': slice(512, 519, None)})
    """
    data, times, names = _stream_pairs(streams)
    K = len(data)
    modes = _per_stream("modes", modes, K, names, "linear", (str,))
    tols = _tolerance_list(tolerances, K, names)
    lengths = _per_stream("src_lengths", src_lengths, K, names, None, (Tensor,))
    if out_dtype is not None and not isinstance(out_dtype, torch.dtype):
        raise TypeError(f"fuse: expected out_dtype to be a torch.dtype or None, got {type(out_dtype).__name__}")
    if out_dtype is None:
        out_dtype = _common_dtype(data)
    out_dtype = _DTYPE_NAMES.get(out_dtype, str(out_dtype)) if out_dtype is not None else None
    if torch.compiler.is_compiling() or (
        torch.is_grad_enabled() and torch._C._any_requires_grad(data, times, tgt_times, lengths)
    ):
        out, valid = _fuse_op(data, times, tgt_times, modes, tols, lengths, out_dtype)
    else:
        # Nothing needs a gradient: skip the Python autograd kernel, exactly as its no-grad branch does
        # (it redispatches below autograd). With lists of tensors that hop costs more than the op itself.
        with torch._C._AutoDispatchBelowAutograd():
            out, valid = _fuse_op(data, times, tgt_times, modes, tols, lengths, out_dtype)
    return (out, valid) if return_mask else out


def fuse_slices(streams: Streams) -> list[slice] | dict[str, slice]:
    """The column slice of each stream in ``fuse(streams, ...)``'s output: a dict by name for dict streams,
    else a list. ``out[..., fuse_slices(streams)["cam"]]`` is the ``cam`` stream's resampled data."""
    data, _, names = _stream_pairs(streams)
    slices, start = [], 0
    for d in data:
        width = d.shape[-1]
        slices.append(slice(start, start + width))
        start += width
    return dict(zip(names, slices)) if names is not None else slices


# ---- predecessor-compatible names --------------------------------------------------------------------


def resample_trajectories(source_data: Tensor, source_times: Tensor, target_times: Tensor) -> Tensor:
    """Predecessor name: ``resample(source_data, source_times, target_times)`` (linear, hold at the ends)."""
    return resample(source_data, source_times, target_times)


def resample_trajectories_cpu(source_data: Tensor, source_times: Tensor, target_times: Tensor) -> Tensor:
    """Predecessor name kept for old code; runs on whatever device the inputs are on."""
    return resample(source_data, source_times, target_times)


def fuse_multimodal(
    stream1_data: Tensor,
    stream1_times: Tensor,
    stream2_data: Tensor,
    stream2_times: Tensor,
    stream3_data: Tensor,
    stream3_times: Tensor,
    target_times: Tensor,
) -> Tensor:
    """Predecessor name: ``fuse`` of three streams (linear, hold at the ends) -> ``Tensor[B, T, D1 + D2 + D3]``.

    Streams of different dtypes give the promoted dtype (the predecessor required one dtype)."""
    streams = [(stream1_data, stream1_times), (stream2_data, stream2_times), (stream3_data, stream3_times)]
    out_dtype = None
    if all(isinstance(d, Tensor) for d, _ in streams):
        dtypes = {d.dtype for d, _ in streams}
        if len(dtypes) > 1:
            out_dtype = functools.reduce(torch.promote_types, dtypes)
    return fuse(streams, target_times, out_dtype=out_dtype)


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
