"""Autograd of robocache::resample: gradients to `data` (every mode but slerp) and to `tgt_times`
(linear mode: the slope of the segment used). The backward is the registered op `_resample_backward`,
so backward graphs compile and export like the forward."""

import torch

from robocache.autograd._double_backward import forbid_double_backward


def _setup_context(ctx, inputs, output):
    data, src_times, tgt_times, mode, src_lengths, _tolerance, out_of_range = inputs
    ctx.mode = mode
    ctx.out_of_range = out_of_range
    ctx.save_for_backward(data, src_times, tgt_times, src_lengths)


def _backward(ctx, grad_out, _grad_valid):
    data, src_times, tgt_times, src_lengths = ctx.saved_tensors
    need_data, _, need_tgt = ctx.needs_input_grad[:3]
    if ctx.mode == "slerp":
        raise NotImplementedError("resample: mode='slerp' has no gradient; detach the inputs or use mode='linear'")
    grad_data, grad_tgt = torch.ops.robocache._resample_backward(
        grad_out, data, src_times, tgt_times, ctx.mode, src_lengths, ctx.out_of_range, [need_data, need_tgt]
    )
    return (grad_data if need_data else None, None, grad_tgt if need_tgt else None, None, None, None, None)


torch.library.register_autograd("robocache::resample", _backward, setup_context=_setup_context)
forbid_double_backward("resample")
