"""Installation report: version, torch/CUDA, which ops have which kernels, GPU, and a quick self-test."""

from __future__ import annotations

import torch

from robocache import _library


def is_cuda_available() -> bool:
    """True when a GPU is visible and the CUDA kernels were built into the op library."""
    return torch.cuda.is_available() and _library.cuda_kernels_built()


def check_installation() -> dict:
    """Everything `python -m robocache info` prints, as a dict."""
    import robocache

    kernels = {op: {key: _library.has_kernel(op, key) for key in ("CPU", "CUDA")} for op in _library.OPS}
    return {
        "robocache": robocache.__version__,
        "library": _library.library_path(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "kernels": kernels,
    }


def print_installation_info() -> None:
    info = check_installation()
    print(f"robocache {info['robocache']}  ({info['library']})")
    print(f"torch {info['torch']}  CUDA build: {info['torch_cuda']}  GPU: {info['gpu'] or 'none'}")
    print(f"{'op':<12}{'CPU':>6}{'CUDA':>6}")
    for op, keys in info["kernels"].items():
        print(f"{op:<12}{'yes' if keys['CPU'] else 'no':>6}{'yes' if keys['CUDA'] else 'no':>6}")


def self_test(device: str | None = None) -> bool:
    """Runs each op once on small random inputs against the float64 reference; raises on a mismatch."""
    from robocache.ops import resample, voxelize
    from robocache.reference import resample_ref, voxelize_ref

    devices = [device] if device else ["cpu"] + (["cuda"] if is_cuda_available() else [])
    g = torch.Generator().manual_seed(0)
    for dev in devices:
        data = torch.randn(3, 17, 5, generator=g).to(dev)
        src = torch.sort(torch.rand(3, 17, generator=g), dim=1).values.to(dev)
        tgt = torch.rand(3, 9, generator=g).to(dev)
        for mode in ("linear", "previous", "nearest"):
            out = resample(data, src, tgt, mode=mode)
            ref, _ = resample_ref(data.double(), src, tgt, mode=mode)
            torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
        points = (torch.rand(2, 301, 3, generator=g) * 2.4 - 1.2).to(dev)  # some outside the grid
        feats = torch.randn(2, 301, 4, generator=g).to(dev)
        grid = dict(grid_min=(-1.0, -1.0, -1.0), voxel_size=(0.25, 0.4, 0.5), grid_size=(8, 5, 4))
        for mode in ("count", "occupancy", "sum", "mean", "max"):
            out = voxelize(points, feats, **grid, mode=mode, deterministic=True)
            ref = voxelize_ref(points, feats.double(), **grid, mode=mode)
            torch.testing.assert_close(out.to(ref.dtype), ref, rtol=1e-5, atol=1e-5)
        _self_test_fuse(dev, g)
    return True


def _self_test_fuse(dev: str, g: torch.Generator) -> None:
    """Two streams of different rates and dtypes, fused in float32, against the float64 reference."""
    from robocache.ops import fuse
    from robocache.reference import fuse_ref

    streams = [
        (torch.randn(3, 11, 8, generator=g).to(dev, torch.bfloat16), torch.sort(torch.rand(11, generator=g)).values.to(dev)),
        (torch.randn(3, 23, 3, generator=g).to(dev), torch.sort(torch.rand(3, 23, generator=g), dim=1).values.to(dev)),
    ]
    tgt = torch.rand(3, 9, generator=g).to(dev)
    out, valid = fuse(streams, tgt, modes=["previous", "linear"], out_dtype=torch.float32, return_mask=True)
    ref, ref_valid = fuse_ref(streams, tgt, modes=["previous", "linear"])
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    if not torch.equal(valid.cpu(), ref_valid.cpu()):
        raise AssertionError("fuse self-test: valid mask differs from the reference")
