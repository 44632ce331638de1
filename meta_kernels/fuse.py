"""Fake kernels of robocache::fuse and robocache::_fuse_backward: shapes and dtypes only."""

import torch
from robocache.meta_kernels.resample import _DATA_DTYPES, _MODES, _TIME_DTYPES


def check_fuse_args(data, times, tgt_times, modes, tolerances, src_lengths, op="fuse"):
    """The shape/dtype/device part of the C++ checks, for tracing (same messages, same exception types)."""
    K = len(data)
    torch._check_value(K > 0, lambda: f"{op}: expected at least one stream, got an empty list of data tensors")
    for name, seq in (("times tensor", times), ("entry of modes", modes), ("entry of src_lengths", src_lengths)):
        torch._check_value(len(seq) == K, lambda: f"{op}: expected one {name} per stream ({K}), got {len(seq)}")
    if tolerances is not None:
        torch._check_value(
            len(tolerances) == K, lambda: f"{op}: expected one entry of tolerances per stream ({K}), got {len(tolerances)}"
        )
    ref = data[0]
    torch._check_value(ref.dim() == 3, lambda: f"{op}: expected data[0] [B,S,D] to have 3 dimensions, got shape {tuple(ref.shape)}")
    B = ref.shape[0]
    torch._check_value(tgt_times.dim() in (1, 2), lambda: f"{op}: expected tgt_times of shape [B,T] or [T], got shape {tuple(tgt_times.shape)}")
    if tgt_times.dim() == 2:
        torch._check_value(tgt_times.shape[0] == B, lambda: f"{op}: expected tgt_times of shape [{B}, T] or [T], got shape {tuple(tgt_times.shape)}")
    if tgt_times.device != ref.device:
        raise ValueError(f"{op}: expected tgt_times on the same device as data[0] ({ref.device}), got {tgt_times.device}")
    if tgt_times.dtype not in _TIME_DTYPES:
        raise TypeError(f"{op}: expected tgt_times to be float32, float64 or int64, got {tgt_times.dtype}")
    total_D = 0
    for k in range(K):
        d, t, lengths, mode = data[k], times[k], src_lengths[k], modes[k]
        torch._check_value(d.dim() == 3, lambda: f"{op}: expected data[{k}] [B,S,D] to have 3 dimensions, got shape {tuple(d.shape)}")
        if d.device != ref.device:
            raise ValueError(f"{op}: expected data[{k}] on the same device as data[0] ({ref.device}), got {d.device}")
        if d.dtype not in _DATA_DTYPES:
            raise TypeError(f"{op}: expected data[{k}] to be float32, float64, float16 or bfloat16, got {d.dtype}")
        torch._check_value(d.shape[0] == B, lambda: f"{op}: expected data[{k}] with batch B={B} (as data[0]), got shape {tuple(d.shape)}")
        S, D = d.shape[1], d.shape[2]
        total_D = total_D + D
        torch._check_value(t.dim() in (1, 2), lambda: f"{op}: expected times[{k}] of shape [B,S] or [S], got shape {tuple(t.shape)}")
        torch._check_value(t.shape[-1] == S, lambda: f"{op}: expected times[{k}] with S={S} samples to match data[{k}], got shape {tuple(t.shape)}")
        if t.dim() == 2:
            torch._check_value(t.shape[0] == B, lambda: f"{op}: expected times[{k}] batch {B}, got shape {tuple(t.shape)}")
        if t.device != ref.device:
            raise ValueError(f"{op}: expected times[{k}] on the same device as data[0] ({ref.device}), got {t.device}")
        if t.dtype != tgt_times.dtype:
            raise TypeError(f"{op}: expected times[{k}] to have the dtype of tgt_times ({tgt_times.dtype}), got {t.dtype}")
        if lengths is not None:
            if lengths.device != ref.device:
                raise ValueError(f"{op}: expected src_lengths[{k}] on the same device as data[0] ({ref.device}), got {lengths.device}")
            if lengths.dtype != torch.int64:
                raise TypeError(f"{op}: expected src_lengths[{k}] to be int64, got {lengths.dtype}")
            torch._check_value(lengths.dim() == 1 and lengths.shape[0] == B, lambda: f"{op}: expected src_lengths[{k}] of shape [{B}], got shape {tuple(lengths.shape)}")
        if mode not in _MODES:
            raise ValueError(f"{op}: expected modes[{k}] to be one of {_MODES}, got {mode!r}")
        if mode == "slerp":
            torch._check_value(D % 4 == 0, lambda: f"{op}: modes[{k}]='slerp' expects D to be a multiple of 4, got data[{k}] of shape {tuple(d.shape)}")
        if tolerances is not None and tolerances[k] != tolerances[k]:
            raise ValueError(f"{op}: expected tolerances[{k}] to be a number >= 0 (or < 0 for none), got nan")
    return B, total_D


_OUT_DTYPE_NAMES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                    "bfloat16": torch.bfloat16}


@torch.library.register_fake("robocache::fuse")
def _fuse_fake(data, times, tgt_times, modes, tolerances, src_lengths, out_dtype=None):
    B, total_D = check_fuse_args(data, times, tgt_times, modes, tolerances, src_lengths)
    if out_dtype is None:
        dtypes = [d.dtype for d in data]
        if any(dt != dtypes[0] for dt in dtypes):
            names = ", ".join(str(dt).replace("torch.", "") for dt in dtypes)
            raise TypeError(f"fuse: streams have different dtypes ({names}); pass out_dtype to choose the output dtype")
        out_dtype = dtypes[0]
    elif out_dtype in _OUT_DTYPE_NAMES:  # the op takes a dtype name (see registration.cpp)
        out_dtype = _OUT_DTYPE_NAMES[out_dtype]
    else:
        raise TypeError(f"fuse: expected out_dtype to be float32, float64, float16 or bfloat16, got '{out_dtype}'")
    T = tgt_times.shape[-1]
    out = data[0].new_empty((B, T, total_D), dtype=out_dtype)
    return out, data[0].new_empty((B, T, len(data)), dtype=torch.bool)


@torch.library.register_fake("robocache::_fuse_backward")
def _fuse_backward_fake(grad_out, data, times, tgt_times, modes, src_lengths):
    B, total_D = check_fuse_args(data, times, tgt_times, modes, None, src_lengths, op="_fuse_backward")
    T = tgt_times.shape[-1]
    torch._check_value(
        grad_out.dim() == 3 and grad_out.shape[0] == B and grad_out.shape[1] == T and grad_out.shape[2] == total_D,
        lambda: f"_fuse_backward: expected grad_out of shape [{B}, {T}, {total_D}], got {tuple(grad_out.shape)}",
    )
    return [d.new_empty(d.shape) for d in data]
