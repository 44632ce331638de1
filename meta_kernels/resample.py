"""Fake kernels of robocache::resample and robocache::_resample_backward: shapes and dtypes only."""

import torch

_MODES = ("linear", "previous", "nearest", "slerp")
_OUT_OF_RANGE = ("hold", "extrapolate", "zero")
_TIME_DTYPES = (torch.float32, torch.float64, torch.int64)
_DATA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_resample_args(data, src_times, tgt_times, mode, src_lengths, out_of_range, op="resample"):
    """The shape/dtype/device part of the C++ checks, for tracing (same messages, same exception types)."""
    torch._check_value(data.dim() == 3, lambda: f"{op}: expected data [B,S,D] to have 3 dimensions, got shape {tuple(data.shape)}")
    if data.dtype not in _DATA_DTYPES:
        raise TypeError(f"{op}: expected data to be float32, float64, float16 or bfloat16, got {data.dtype}")
    B, S, D = data.shape
    torch._check_value(src_times.dim() in (1, 2), lambda: f"{op}: expected src_times of shape [B,S] or [S], got shape {tuple(src_times.shape)}")
    torch._check_value(tgt_times.dim() in (1, 2), lambda: f"{op}: expected tgt_times of shape [B,T] or [T], got shape {tuple(tgt_times.shape)}")
    torch._check_value(src_times.shape[-1] == S, lambda: f"{op}: expected src_times with S={S} samples, got shape {tuple(src_times.shape)}")
    if src_times.dim() == 2:
        torch._check_value(src_times.shape[0] == B, lambda: f"{op}: expected src_times batch {B}, got shape {tuple(src_times.shape)}")
    if tgt_times.dim() == 2:
        torch._check_value(tgt_times.shape[0] == B, lambda: f"{op}: expected tgt_times batch {B}, got shape {tuple(tgt_times.shape)}")
    for name, t in (("src_times", src_times), ("tgt_times", tgt_times), ("src_lengths", src_lengths)):
        if t is not None and t.device != data.device:
            raise ValueError(f"{op}: expected {name} on the same device as data ({data.device}), got {t.device}")
    if src_times.dtype not in _TIME_DTYPES:
        raise TypeError(f"{op}: expected src_times to be float32, float64 or int64, got {src_times.dtype}")
    if tgt_times.dtype != src_times.dtype:
        raise TypeError(f"{op}: expected tgt_times to have the dtype of src_times ({src_times.dtype}), got {tgt_times.dtype}")
    if src_lengths is not None:
        if src_lengths.dtype != torch.int64:
            raise TypeError(f"{op}: expected src_lengths to be int64, got {src_lengths.dtype}")
        torch._check_value(src_lengths.dim() == 1 and src_lengths.shape[0] == B, lambda: f"{op}: expected src_lengths of shape [{B}], got shape {tuple(src_lengths.shape)}")
    if mode not in _MODES:
        raise ValueError(f"{op}: expected mode to be one of {_MODES}, got {mode!r}")
    if out_of_range not in _OUT_OF_RANGE:
        raise ValueError(f"{op}: expected out_of_range to be one of {_OUT_OF_RANGE}, got {out_of_range!r}")
    if mode == "slerp":
        torch._check_value(D % 4 == 0, lambda: f"{op}: mode='slerp' expects D to be a multiple of 4, got D={D}")
    return B, S, D


@torch.library.register_fake("robocache::resample")
def _resample_fake(data, src_times, tgt_times, mode="linear", src_lengths=None, tolerance=None, out_of_range="hold"):
    B, _, D = check_resample_args(data, src_times, tgt_times, mode, src_lengths, out_of_range)
    if tolerance is not None and not tolerance >= 0:
        raise ValueError(f"resample: expected tolerance >= 0, got {tolerance}")
    T = tgt_times.shape[-1]
    return data.new_empty((B, T, D)), data.new_empty((B, T), dtype=torch.bool)


@torch.library.register_fake("robocache::_resample_backward")
def _resample_backward_fake(grad_out, data, src_times, tgt_times, mode, src_lengths, out_of_range, output_mask):
    check_resample_args(data, src_times, tgt_times, mode, src_lengths, out_of_range, op="_resample_backward")
    grad_data = data.new_empty(data.shape) if output_mask[0] else data.new_empty((0,))
    grad_tgt = tgt_times.new_empty(tgt_times.shape) if output_mask[1] else tgt_times.new_empty((0,))
    return grad_data, grad_tgt
