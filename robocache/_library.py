"""Finds and loads the compiled op library `robocache._C`, and answers what it provides."""

from __future__ import annotations

import glob
import os

import torch

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
OPS = ("resample", "fuse", "voxelize")  # public ops; each has `_<op>_backward` too


def library_path() -> str:
    """Path of the built `_C` shared library (what `torch.ops.load_library` takes)."""
    candidates = sorted(glob.glob(os.path.join(_PACKAGE_DIR, "_C*.so")) + glob.glob(os.path.join(_PACKAGE_DIR, "_C*.pyd")))
    if not candidates:
        raise ImportError(
            "robocache: the compiled op library robocache/_C*.so was not found. Build it with "
            "`pip install --no-build-isolation -e .` (torch must be installed first)."
        )
    return candidates[0]


def load() -> str:
    path = library_path()
    try:
        torch.ops.load_library(path)
    except OSError as e:  # usually a torch version other than the one _C was built against
        raise ImportError(
            f"robocache: loading {path} failed ({e}). It was probably built against another torch "
            f"(this is torch {torch.__version__}); rebuild with `pip install --no-build-isolation -e .`."
        ) from e
    return path


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether `robocache::<op>` has a kernel for `dispatch_key` ("CPU", "CUDA", ...) in the dispatcher."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"robocache::{op}", dispatch_key)


def cuda_kernels_built() -> bool:
    return all(has_kernel(op, "CUDA") for op in OPS)
