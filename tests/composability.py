"""The composability contract of SPEC.md, as one reusable harness for every op.

An op describes itself once as an `OpCase` (how to make fresh inputs at a given batch size, how to call
the public function, how to call the raw op); the `check_*` functions below then run opcheck,
torch.compile (fullgraph, dynamic and static), torch.export + AOTInductor in a fresh process that only
loads the op library, the profiler, and on CUDA reduce-overhead and an explicit CUDA graph.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils._pytree import tree_leaves

from robocache import _library


@dataclass
class OpCase:
    name: str  # the op's name in the robocache namespace (profiler event robocache::<name>)
    op: Any  # torch.ops.robocache.<name>.default
    fn: Callable[..., Any]  # the public call, tensors only (non-tensor options bound in)
    make_inputs: Callable[[int, str], tuple]  # (batch size, device) -> fresh random tensors
    op_args: Callable[[tuple], tuple[tuple, dict]]  # tensors -> (args, kwargs) of the raw op
    batch_dims: tuple  # per tensor: index of its batch dimension, or None
    grad_inputs: tuple = field(default=())  # tensors that get requires_grad in the gradient opcheck


def _assert_same(got, expect) -> None:
    got_leaves, expect_leaves = tree_leaves(got), tree_leaves(expect)
    assert len(got_leaves) == len(expect_leaves)
    for g, e in zip(got_leaves, expect_leaves):
        torch.testing.assert_close(g, e, rtol=0, atol=0, equal_nan=True)


def check_opcheck(case: OpCase, device: str, requires_grad: bool) -> None:
    tensors = list(case.make_inputs(3, device))
    if requires_grad:
        for i in case.grad_inputs:
            tensors[i] = tensors[i].detach().requires_grad_()
    args, kwargs = case.op_args(tuple(tensors))
    torch.library.opcheck(case.op, args, kwargs)


def check_compile(case: OpCase, device: str, dynamic: bool) -> None:
    torch._dynamo.reset()
    compiled = torch.compile(case.fn, fullgraph=True, dynamic=dynamic)
    for batch in (3, 5):
        inputs = case.make_inputs(batch, device)
        _assert_same(compiled(*inputs), case.fn(*inputs))


_AOTI_RUNNER = textwrap.dedent(
    """
    import sys
    import torch
    lib, package, inputs_path, out_path, device = sys.argv[1:]
    torch.ops.load_library(lib)
    model = torch._inductor.aoti_load_package(package)
    inputs = [t.to(device) for t in torch.load(inputs_path)]
    out = model(*inputs)
    if isinstance(out, torch.Tensor):
        out = [out]
    torch.save([o.cpu() for o in out], out_path)
    assert "robocache" not in sys.modules, "the AOTI runner must not import robocache"
    """
)


def check_export_aoti(case: OpCase, device: str, tmp_path) -> None:
    class Model(torch.nn.Module):
        def forward(self, *xs):
            return case.fn(*xs)

    batch = torch.export.Dim("batch", min=2, max=4096)
    dynamic_shapes = tuple({d: batch} if d is not None else None for d in case.batch_dims)
    # forward(*xs) takes one variadic argument, so the shapes of all inputs are one nested tuple.
    ep = torch.export.export(Model(), case.make_inputs(3, device), dynamic_shapes=(dynamic_shapes,))
    package = torch._inductor.aoti_compile_and_package(ep, package_path=os.path.join(tmp_path, f"{case.name}.pt2"))

    new_inputs = case.make_inputs(5, device)  # another batch size: the dynamic dim must hold
    expect = tree_leaves(case.fn(*new_inputs))
    inputs_path, out_path = os.path.join(tmp_path, "inputs.pt"), os.path.join(tmp_path, "out.pt")
    torch.save([t.cpu() for t in new_inputs], inputs_path)
    runner = os.path.join(tmp_path, "runner.py")
    with open(runner, "w") as f:
        f.write(_AOTI_RUNNER)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, runner, _library.library_path(), package, inputs_path, out_path, device],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert proc.returncode == 0, f"AOTI runner failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    got = torch.load(out_path)
    _assert_same(got, [e.cpu() for e in expect])


def check_profiler(case: OpCase, device: str) -> None:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    inputs = case.make_inputs(3, device)
    case.fn(*inputs)  # warm-up outside the trace
    with torch.profiler.profile(activities=activities) as prof:
        case.fn(*inputs)
        if device == "cuda":
            torch.cuda.synchronize()
    events = prof.events()
    op_events = [e for e in events if e.name == f"robocache::{case.name}"]
    assert op_events, f"no robocache::{case.name} event in {sorted({e.name for e in events})}"
    if device == "cuda":
        def descendants(e):
            for c in e.cpu_children:
                yield c
                yield from descendants(c)

        launches = [c.name for e in op_events for c in descendants(e) if "LaunchKernel" in c.name]
        assert launches, f"no kernel launch under robocache::{case.name}"
        kernels = [e.name for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        assert any(case.name in k for k in kernels), f"no {case.name} kernel among {kernels}"


def check_cuda_graph(case: OpCase) -> None:
    static_inputs = case.make_inputs(3, "cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        case.fn(*static_inputs)  # warm-up on a side stream, as capture requires
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = case.fn(*static_inputs)
    for _ in range(2):
        fresh = case.make_inputs(3, "cuda")
        for dst, src in zip(static_inputs, fresh):
            dst.copy_(src)
        graph.replay()
        _assert_same(static_out, case.fn(*fresh))


def check_reduce_overhead(case: OpCase) -> None:
    torch._dynamo.reset()
    compiled = torch.compile(case.fn, mode="reduce-overhead", fullgraph=True)
    for _ in range(4):  # the first calls record, later ones replay the graph
        inputs = case.make_inputs(3, "cuda")
        got = [t.clone() for t in tree_leaves(compiled(*inputs))]
        _assert_same(got, tree_leaves(case.fn(*inputs)))


# Every check by name; tests parametrise over this list so a new op gets all of them by writing one OpCase.
CHECKS = [
    "opcheck",
    "opcheck_grad",
    "compile_static",
    "compile_dynamic",
    "export_aoti",
    "profiler",
    "cuda_graph",
    "reduce_overhead",
]
CUDA_ONLY = {"cuda_graph", "reduce_overhead"}


def run_check(check: str, case: OpCase, device: str, tmp_path) -> None:
    import pytest

    if check in CUDA_ONLY and device != "cuda":
        pytest.skip(f"{check} is a CUDA-only check")
    if check == "opcheck":
        check_opcheck(case, device, requires_grad=False)
    elif check == "opcheck_grad":
        if not case.grad_inputs:
            pytest.skip(f"{case.name} has no differentiable inputs in this case")
        check_opcheck(case, device, requires_grad=True)
    elif check == "compile_static":
        check_compile(case, device, dynamic=False)
    elif check == "compile_dynamic":
        check_compile(case, device, dynamic=True)
    elif check == "export_aoti":
        check_export_aoti(case, device, str(tmp_path))
    elif check == "profiler":
        check_profiler(case, device)
    elif check == "cuda_graph":
        check_cuda_graph(case)
    elif check == "reduce_overhead":
        check_reduce_overhead(case)
    else:
        raise AssertionError(f"unknown check {check}")
