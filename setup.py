"""Builds robocache._C: a plain shared library holding only dispatcher registrations (no pybind).

CPU kernels are always built. CUDA kernels are built when this torch was built with CUDA and nvcc is
found (CUDA_HOME); ROBOCACHE_USE_CUDA=0 skips them, ROBOCACHE_FORCE_CUDA=1 insists. Whether a GPU is
present does not matter: build machines usually have none.
"""

import glob
import os

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _want_cuda() -> bool:
    if os.environ.get("ROBOCACHE_USE_CUDA", "1") == "0":
        return False
    if os.environ.get("ROBOCACHE_FORCE_CUDA", "0") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def _extension():
    sources = sorted(glob.glob("ops_cuda/*.cpp") + glob.glob("ops_cuda/cpu/*.cpp"))
    # -g0 and no <torch/extension.h>: the dev machine has 2 cores and debug info doubles build time.
    cxx_flags = ["-O3", "-g0", "-fopenmp", "-DPy_LIMITED_API=0x030A0000"]
    include_dirs = [os.path.join(ROOT, "ops_cuda")]
    if not _want_cuda():
        return CppExtension(
            "robocache._C", sources, include_dirs=include_dirs, extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"], py_limited_api=True,
        )
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;8.7;9.0+PTX")
    sources += sorted(glob.glob("ops_cuda/cuda/*.cu"))
    # No --use_fast_math: voxel indices must use IEEE division to match the CPU bit for bit.
    nvcc_flags = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]
    return CUDAExtension(
        "robocache._C", sources, include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx_flags + ["-DROBOCACHE_WITH_CUDA"], "nvcc": nvcc_flags + ["-DROBOCACHE_WITH_CUDA"]},
        extra_link_args=["-fopenmp"], py_limited_api=True,
    )


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
