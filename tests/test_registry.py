"""Every public op is complete: kernels, fake, autograd, backward op, test file and benchmark."""

import os
import subprocess
import sys

import pytest
import torch

import robocache
from robocache import _library

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _has_fake(qualname: str) -> bool:
    entry = torch._library.simple_registry.singleton.find(qualname)
    return entry.fake_impl.kernel is not None


@pytest.mark.parametrize("op", _library.OPS)
def test_op_is_complete(op):
    for name in (op, f"_{op}_backward"):
        qualname = f"robocache::{name}"
        assert _library.has_kernel(name, "CPU"), f"{qualname} has no CPU kernel"
        assert _has_fake(qualname), f"{qualname} has no fake kernel"
        assert _library.has_kernel(name, "Autograd"), f"{qualname} has no autograd (or explicit non-differentiable) kernel"
    if torch.version.cuda is not None and os.environ.get("ROBOCACHE_USE_CUDA", "1") != "0":
        assert _library.has_kernel(op, "CUDA") == _library.has_kernel(f"_{op}_backward", "CUDA")
    assert os.path.exists(os.path.join(ROOT, "tests", f"test_{op}.py")), f"no tests/test_{op}.py"
    assert os.path.exists(os.path.join(ROOT, "profiling", f"bench_{op}.py")), f"no profiling/bench_{op}.py"
    assert hasattr(robocache, op), f"robocache.{op} is not exported"


def test_library_loads_without_the_package():
    """torch.ops.load_library alone registers the ops (what an AOTInductor/C++ runtime does)."""
    code = (
        "import sys, torch\n"
        f"torch.ops.load_library({_library.library_path()!r})\n"
        "d = torch.arange(12.0).reshape(1, 4, 3)\n"
        "s = torch.arange(4.0)\n"
        "out, valid = torch.ops.robocache.resample(d, s, torch.tensor([1.5]), 'linear', None, None, 'hold')\n"
        "assert out.flatten().tolist() == [4.5, 5.5, 6.5], out\n"
        "assert 'robocache' not in sys.modules\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_installation_info():
    info = robocache.check_installation()
    assert info["torch"] == torch.__version__
    assert set(info["kernels"]) == set(_library.OPS)
    assert all(info["kernels"][op]["CPU"] for op in _library.OPS)
    assert robocache.is_cuda_available() == (torch.cuda.is_available() and _library.cuda_kernels_built())


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "robocache", "info"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for op in _library.OPS:
        assert op in proc.stdout


def test_cli_info(capsys):
    from robocache.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out and all(op in out for op in _library.OPS)


def test_cli_selftest(capsys):
    from robocache.cli import main

    assert main(["selftest"]) == 0
    assert "self-test passed" in capsys.readouterr().out


def test_cli_demo(capsys):
    from robocache.cli import main

    assert main(["demo", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "camera" in out and "[8, 500, 77]" in out and "ms per batch" in out


def test_predecessor_names():
    d = torch.randn(2, 5, 3)
    s = torch.arange(5.0)
    t = torch.tensor([0.5, 10.0])
    out = robocache.resample_trajectories(d, s, t)
    torch.testing.assert_close(out, robocache.resample(d, s, t))
    torch.testing.assert_close(robocache.resample_trajectories_cpu(d, s, t), out)
    torch.testing.assert_close(out[:, 1], d[:, -1])  # held at the end, never extrapolated
