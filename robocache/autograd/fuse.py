"""Autograd of robocache::fuse: gradients to every stream's data (every mode but slerp). The backward is
the registered op `_fuse_backward`, so backward graphs compile and export like the forward. There is no
gradient for tgt_times (use `resample` per stream to learn a time offset); asking for one raises."""

import torch
from torch import Tensor

from robocache.autograd._double_backward import forbid_double_backward


def _setup_context(ctx, inputs, output):
    data, times, tgt_times, modes, _tolerances, src_lengths, _out_dtype = inputs
    ctx.modes = list(modes)
    ctx.num_streams = len(data)
    ctx.lengths_all_tensors = all(isinstance(t, Tensor) for t in src_lengths)
    ctx.save_for_backward(*data, *times, tgt_times, *src_lengths)


def _backward(ctx, grad_out, _grad_valid):
    K = ctx.num_streams
    saved = ctx.saved_tensors
    data, times, tgt_times, src_lengths = list(saved[:K]), list(saved[K : 2 * K]), saved[2 * K], list(saved[2 * K + 1 :])
    need_data = ctx.needs_input_grad[0]
    if ctx.needs_input_grad[2]:
        raise NotImplementedError(
            "fuse: tgt_times has no gradient; detach it, or use resample per stream to learn a time offset"
        )
    for k, (mode, need) in enumerate(zip(ctx.modes, need_data)):
        if need and mode == "slerp":
            raise NotImplementedError(
                f"fuse: modes[{k}]='slerp' has no gradient; detach data[{k}] or use mode='linear'"
            )
    grads = torch.ops.robocache._fuse_backward(grad_out, data, times, tgt_times, ctx.modes, src_lengths)
    grad_data = [g if need else None for g, need in zip(grads, need_data)]
    grad_lengths = [None] * K if ctx.lengths_all_tensors else None
    return grad_data, [None] * K, None, None, None, grad_lengths, None


torch.library.register_autograd("robocache::fuse", _backward, setup_context=_setup_context)
forbid_double_backward("fuse")
