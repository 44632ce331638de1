"""Backward ops are differentiable only once: their own autograd raises a clear error."""

import torch


def forbid_double_backward(op: str) -> None:
    """Registers autograd for `robocache::_<op>_backward` that raises on a second differentiation."""

    def backward(ctx, *grads):
        raise NotImplementedError(f"{op}: double backward is not supported")

    def setup_context(ctx, inputs, output):
        pass

    torch.library.register_autograd(f"robocache::_{op}_backward", backward, setup_context=setup_context)
