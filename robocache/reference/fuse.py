"""Float64 oracle of `fuse` (SPEC.md): `resample_ref` of each stream (out_of_range="hold"), concatenated.

Also the eager and torch.compile baseline of the benchmarks (with compute_dtype=float32): what a user
would write instead of the fused op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from robocache.reference.resample import resample_ref


def _per_stream(value, K: int, names: list | None, default):
    """One entry per stream: None -> default, a dict keyed by stream name, a sequence, or one value for all."""
    if value is None:
        return [default] * K
    if isinstance(value, Mapping):
        return [value.get(n, default) for n in names]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value] * K


def fuse_ref(
    streams: Sequence[tuple[Tensor, Tensor]] | Mapping[str, tuple[Tensor, Tensor]],
    tgt_times: Tensor,
    modes: str | Sequence[str] | Mapping[str, str] | None = None,
    tolerances: float | Sequence[float | None] | Mapping[str, float | None] | None = None,
    src_lengths: Tensor | Sequence[Tensor | None] | Mapping[str, Tensor | None] | None = None,
    compute_dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Returns (out [B,T,sum D_k] in compute_dtype, valid [B,T,K] bool)."""
    names = list(streams.keys()) if isinstance(streams, Mapping) else None
    pairs = list(streams.values()) if isinstance(streams, Mapping) else list(streams)
    K = len(pairs)
    modes = _per_stream(modes, K, names, "linear")
    tolerances = _per_stream(tolerances, K, names, None)
    lengths = src_lengths if isinstance(src_lengths, (list, tuple, Mapping)) or src_lengths is None else [src_lengths] * K
    lengths = _per_stream(lengths, K, names, None)
    outs, valids = [], []
    for (data, times), mode, tol, n in zip(pairs, modes, tolerances, lengths):
        out, valid = resample_ref(data, times, tgt_times, mode=mode, src_lengths=n, tolerance=tol,
                                  out_of_range="hold", compute_dtype=compute_dtype)
        outs.append(out)
        valids.append(valid)
    return torch.cat(outs, dim=-1), torch.stack(valids, dim=-1)
