"""Fake (meta) kernels: output shapes and dtypes only, exact, for torch.compile and torch.export.

Installed as `robocache.meta_kernels`; the op library names this module with `set_python_module`, so a
process that loads a graph without importing robocache still gets the fakes when it needs them.
"""

from robocache.meta_kernels import (
    fuse,  # noqa: F401
    resample,  # noqa: F401
    voxelize,  # noqa: F401
)
