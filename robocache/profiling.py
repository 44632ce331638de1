"""Profiler helpers: a torch.profiler trace of any callable, readable in TensorBoard's profiler plugin.

    import robocache.profiling
    robocache.profiling.trace(lambda: model(batch), "runs/trace")   # then: tensorboard --logdir runs

Every RoboCache call appears as a `robocache::<op>` event with its CUDA kernels beneath it. On CUDA the
callable is run once more under `torch.autograd.profiler.emit_nvtx()`, so Nsight Systems (when it is
attached) also sees one NVTX range per op.
"""

from __future__ import annotations

import os
from typing import Callable

import torch


def trace(fn: Callable[[], object], path: str, *, warmup: int = 1, steps: int = 1, nvtx: bool = True):
    """Profiles `steps` calls of `fn` (after `warmup` untraced calls) and writes a TensorBoard trace
    (`*.pt.trace.json`) under the folder `path`. Returns the finished `torch.profiler.profile`."""
    os.makedirs(path, exist_ok=True)
    cuda = torch.cuda.is_available()
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(
        activities=activities,
        record_shapes=True,
        on_trace_ready=torch.profiler.tensorboard_trace_handler(path),
    ) as prof:
        for _ in range(steps):
            fn()
        if cuda:
            torch.cuda.synchronize()
    if cuda and nvtx:
        with torch.autograd.profiler.emit_nvtx():
            fn()
        torch.cuda.synchronize()
    return prof
