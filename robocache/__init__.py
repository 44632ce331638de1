"""RoboCache: GPU data ops for robot learning (resample, fuse, voxelize) as torch custom ops.

Importing this package loads the compiled op library, then registers the fake (meta) kernels and the
autograd formulas. The ops are then available as `robocache.<op>` and `torch.ops.robocache.<op>`.
"""

from robocache import _library

_library.load()

from robocache import autograd as _autograd  # noqa: E402,F401  (registers autograd)
from robocache import meta_kernels as _meta_kernels  # noqa: E402,F401  (registers fakes)
from robocache.info import (  # noqa: E402
    check_installation,
    is_cuda_available,
    print_installation_info,
    self_test,
)
from robocache.ops import (  # noqa: E402
    fuse,
    fuse_multimodal,
    fuse_slices,
    resample,
    resample_trajectories,
    resample_trajectories_cpu,
    voxelize,
    voxelize_pointcloud,
)

__version__ = "0.1.0"

__all__ = [
    "resample",
    "resample_trajectories",
    "resample_trajectories_cpu",
    "fuse",
    "fuse_slices",
    "fuse_multimodal",
    "voxelize",
    "voxelize_pointcloud",
    "is_cuda_available",
    "check_installation",
    "print_installation_info",
    "self_test",
    "__version__",
]
