"""Pure-PyTorch oracles: the executable statement of SPEC.md, computed in float64 by default.

They import nothing from the ops they judge. Benchmarks also time them (eager and torch.compile) as the
baselines a user would otherwise write.
"""

from robocache.reference.fuse import fuse_ref
from robocache.reference.resample import resample_ref
from robocache.reference.voxelize import voxelize_ref

__all__ = ["resample_ref", "fuse_ref", "voxelize_ref"]
