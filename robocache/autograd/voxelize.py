"""Autograd of robocache::voxelize: gradients to `features` for sum, mean and max (max: the lowest-index
point holding each voxel's maximum). `points` and `lengths` get none. The backward is the registered op
`_voxelize_backward`, so backward graphs compile and export like the forward."""

import torch

from robocache.autograd._double_backward import forbid_double_backward

_FEATURE_MODES = ("sum", "mean", "max")


def _setup_context(ctx, inputs, output):
    points, features, grid_min, voxel_size, grid_size, mode, lengths, _deterministic, channels_first = inputs
    ctx.options = (grid_min, voxel_size, grid_size, mode, channels_first)
    # max compares each feature with its voxel's maximum; sum and mean need no saved output.
    ctx.save_for_backward(points, features, lengths, output if mode == "max" else None)


def _backward(ctx, grad_out):
    grid_min, voxel_size, grid_size, mode, channels_first = ctx.options
    if mode not in _FEATURE_MODES or not ctx.needs_input_grad[1]:
        return (None,) * 9
    points, features, lengths, out = ctx.saved_tensors
    grad_features = torch.ops.robocache._voxelize_backward(
        grad_out, points, features, out, grid_min, voxel_size, grid_size, mode, lengths, channels_first
    )
    return None, grad_features, None, None, None, None, None, None, None


torch.library.register_autograd("robocache::voxelize", _backward, setup_context=_setup_context)
forbid_double_backward("voxelize")
