"""Shared test helpers: devices, dtypes, tolerances, input generators, output poisoning."""

from __future__ import annotations

import contextlib

import pytest
import torch

from robocache import _library

DATA_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def cuda_ready(op: str = "resample") -> bool:
    """A GPU is visible and this build registered a CUDA kernel for `op` (a CPU-only build skips)."""
    return torch.cuda.is_available() and _library.has_kernel(op, "CUDA")


def devices(op: str = "resample"):
    """pytest params for every device; CUDA ones skip (visibly) where no GPU or no CUDA kernel."""
    return [
        "cpu",
        pytest.param(
            "cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not cuda_ready(op), reason="no GPU or no CUDA kernel")]
        ),
    ]


def tolerances(dtype: torch.dtype) -> dict:
    """Bounds against the float64 oracle: about twice the rounding of one result in that dtype."""
    return {
        torch.float64: dict(rtol=1e-10, atol=1e-10),
        torch.float32: dict(rtol=2e-5, atol=2e-5),
        torch.float16: dict(rtol=2e-3, atol=2e-3),
        torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2),
    }[dtype]


@contextlib.contextmanager
def poisoned_outputs():
    """Every fresh allocation (at::empty) is filled with NaN / max-int / True while active, so an output
    element a kernel forgot to write shows up as a mismatch instead of a lucky zero."""
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = old_fill
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


def to_clock(seconds: torch.Tensor, time_dtype: torch.dtype) -> torch.Tensor:
    """Seconds (float64) in the clock of time_dtype: int64 clocks count nanoseconds."""
    if time_dtype == torch.int64:
        return (seconds * 1e9).round().long()
    return seconds.to(time_dtype)


def clock_units(time_dtype: torch.dtype) -> float:
    return 1e9 if time_dtype == torch.int64 else 1.0


def sorted_times(b: int, s: int, dtype: torch.dtype, generator: torch.Generator, duplicates: bool = True):
    """Non-decreasing jittered clocks [b, s] starting near 0, with some exact duplicate timestamps."""
    if dtype == torch.int64:
        steps = torch.randint(0, 2_000_000, (b, s), generator=generator)  # ns, ~1 ms apart
        if not duplicates:
            steps = steps + 1
        return torch.cumsum(steps, dim=1)
    steps = torch.rand(b, s, generator=generator, dtype=torch.float64) * 2e-3
    if duplicates and s > 3:
        steps[:, s // 3] = 0.0  # a repeated timestamp
    return torch.cumsum(steps, dim=1).to(dtype)


def targets_around(src: torch.Tensor, t: int, generator: torch.Generator, hit_fraction: float = 0.2):
    """Targets [b, t] spanning a bit beyond the source range, some of them exact source timestamps."""
    b, s = src.shape
    if s == 0:
        return (torch.rand(b, t, generator=generator, dtype=torch.float64) * 1e-2).to(src.dtype)
    lo = src.min(dim=1, keepdim=True).values.double()
    hi = src.max(dim=1, keepdim=True).values.double()
    span = (hi - lo).clamp(min=1e-3)
    u = torch.rand(b, t, generator=generator, dtype=torch.float64) * 1.2 - 0.1
    x = lo + u * span
    x = x.round() if src.dtype == torch.int64 else x
    x = x.to(src.dtype)
    hits = torch.rand(b, t, generator=generator) < hit_fraction
    pick = torch.randint(0, s, (b, t), generator=generator)
    return torch.where(hits, torch.gather(src, 1, pick), x)


def assert_close_to_ref(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype):
    torch.testing.assert_close(out.cpu().double(), ref.cpu().double(), equal_nan=True, **tolerances(dtype))
