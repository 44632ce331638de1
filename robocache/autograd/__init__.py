"""Autograd formulas, registered with torch.library.register_autograd; each backward is its own op."""

from robocache.autograd import resample  # noqa: F401
from robocache.autograd import voxelize  # noqa: F401
from robocache.autograd import fuse  # noqa: F401
