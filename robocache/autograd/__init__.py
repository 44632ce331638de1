"""Autograd formulas, registered with torch.library.register_autograd; each backward is its own op."""

from robocache.autograd import (
    fuse,  # noqa: F401
    resample,  # noqa: F401
    voxelize,  # noqa: F401
)
