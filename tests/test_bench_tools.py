"""The bench command, its regression gate, the README generator and the profiler-trace helper."""

import json
import os
import sys

import pytest
import torch
from helpers import devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from profiling import bench_all, readme_perf  # noqa: E402


def _row(op="resample", case="B256 S2000 T1000 D256", dtype="bf16", **kw):
    row = {"op": op, "case": case, "dtype": dtype, "time_us": 100.0, "pct_floor": 95.0, "vs_eager": 10.0,
           "vs_compiled": 1.2, "extra": {}}
    row.update(kw)
    return row


def test_targets_and_regression_gate():
    good = [_row()]
    assert bench_all.check_targets(good) == []
    slow = [_row(pct_floor=70.0, vs_compiled=0.7)]
    misses = bench_all.check_targets(slow)
    assert len(misses) == 2 and "pct_floor" in misses[0]
    baseline = {"rows": [_row()], "known_misses": {}}
    failures = bench_all.check_against([_row(vs_compiled=1.0)], baseline)  # 17% behind the baseline ratio
    assert failures and "vs_compiled" in failures[0]
    assert bench_all.check_against([_row(vs_compiled=1.1)], baseline) == []  # within 10%
    assert bench_all.check_against([_row(vs_eager=5.0)], baseline) == []  # vs eager is reported, not gated
    tiny = {"rows": [_row(time_us=5.0, vs_compiled=1.6)], "known_misses": {}}
    assert bench_all.check_against([_row(time_us=6.0, vs_compiled=1.2)], tiny) == []  # launch-bound: not gated
    listed = {"rows": [_row(pct_floor=70.0, vs_compiled=0.7)],
              "known_misses": {m: "measured, reason in NOTES.md" for m in misses}}
    assert bench_all.check_against(slow, listed) == []
    unlisted = bench_all.check_against(slow, {"rows": [], "known_misses": {}})
    assert len(unlisted) == 2 and all("not in the baseline's known_misses" in f for f in unlisted)


def test_readme_performance_section_matches_committed_results():
    assert readme_perf.main(["--check"]) == 0, "run python profiling/readme_perf.py"


@pytest.mark.slow
def test_bench_command_cpu_quick(tmp_path):
    out = tmp_path / "bench.json"
    code = bench_all.main(["--ops", "resample", "--device", "cpu", "--quick", "--json", str(out),
                           "--markdown", str(tmp_path / "bench.md")])
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r["rel_err"] < 1e-4 and r["time_us"] > 0 and r["eager_us"] > 0 for r in rows)
    assert "| resample |" in (tmp_path / "bench.md").read_text()


def test_trace_helper(tmp_path):
    import robocache
    import robocache.profiling

    d, s, t = torch.randn(2, 9, 3), torch.arange(9.0), torch.rand(4) * 8
    prof = robocache.profiling.trace(lambda: robocache.resample(d, s, t), str(tmp_path))
    assert any(e.name == "robocache::resample" for e in prof.events())
    assert any(name.endswith(".pt.trace.json") for name in os.listdir(tmp_path))


def _kernels_beneath(event) -> list[str]:
    """Names of the device kernels launched by `event` or any op nested under it."""
    names = [k.name for k in getattr(event, "kernels", [])]
    for child in event.cpu_children:
        names += _kernels_beneath(child)
    return names


@pytest.mark.parametrize("device", devices("voxelize"))
def test_trace_of_compiled_model_names_every_op(tmp_path, device):
    """A torch.compile'd policy front-end calling all three ops: each appears by name in the trace, and
    on CUDA with its own kernels beneath it (what a user looks for in TensorBoard)."""
    import robocache
    import robocache.profiling

    g = torch.Generator().manual_seed(0)
    cam = torch.randn(2, 30, 16, generator=g).to(device)
    joints = torch.randn(2, 500, 7, generator=g).to(device)
    cam_t = torch.linspace(0, 1, 30).expand(2, 30).to(device)
    joint_t = torch.linspace(0, 1, 500).expand(2, 500).to(device)
    tgt = torch.linspace(0.01, 0.99, 50).expand(2, 50).to(device)
    points = (torch.rand(2, 1000, 3, generator=g) * 2 - 1).to(device)

    @torch.compile(fullgraph=True)
    def front_end(cam, cam_t, joints, joint_t, tgt, points):
        obs = robocache.fuse({"cam": (cam, cam_t), "joints": (joints, joint_t)}, tgt)
        action_ref = robocache.resample(joints, joint_t, tgt, mode="previous")
        grid = robocache.voxelize(points, grid_min=(-1, -1, -1), voxel_size=0.25, grid_size=(8, 8, 8))
        return obs, action_ref, grid

    prof = robocache.profiling.trace(lambda: front_end(cam, cam_t, joints, joint_t, tgt, points), str(tmp_path))
    events = prof.events()
    for op in ("resample", "fuse", "voxelize"):
        mine = [e for e in events if e.name == f"robocache::{op}"]
        assert mine, f"no robocache::{op} event in the trace"
        if device == "cuda":
            assert any(_kernels_beneath(e) for e in mine), f"robocache::{op} has no CUDA kernel beneath it"
    assert any(name.endswith(".pt.trace.json") for name in os.listdir(tmp_path))


def test_bench_from_json_replots_and_checks(tmp_path):
    """--from-json reuses an earlier run (e.g. from a GPU box without matplotlib) for markdown and the gate."""
    env = {"device": "NVIDIA H100 80GB HBM3", "device_type": "cuda", "torch": "2.11", "cuda": "13.0",
           "commit": "abc1234", "date": "2026-11-25", "command": "bench", "copy_bandwidth_GBps": 3000.0}
    row = _row(floor_us=90.0, bytes=1, rel_err=1e-3, eager_us=1000.0, compiled_us=120.0)
    earlier = tmp_path / "run.json"
    earlier.write_text(json.dumps({"environment": env, "rows": [row]}))
    md = tmp_path / "run.md"
    assert bench_all.main(["--from-json", str(earlier), "--markdown", str(md)]) == 0
    assert "| resample | B256 S2000 T1000 D256 | bf16 | 100.0 |" in md.read_text()
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"rows": [_row(vs_compiled=2.0)], "known_misses": {}}))
    assert bench_all.main(["--from-json", str(earlier), "--check", str(baseline)]) == 1  # 1.2x vs 2x: behind


@pytest.mark.slow
def test_wheel_script_builds_a_wheel_that_imports_alone(tmp_path):
    """.ci/wheel (the wheel workflow's script): the wheel imports and passes selftest outside the tree."""
    import subprocess

    env = dict(os.environ, PYTHON=sys.executable, ROBOCACHE_USE_CUDA="0", DIST=str(tmp_path / "dist"))
    proc = subprocess.run(["bash", os.path.join(ROOT, ".ci", "wheel")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "wheel import ok" in proc.stdout and "robocache self-test passed" in proc.stdout
    assert len(list((tmp_path / "dist").glob("robocache-*.whl"))) == 1


def test_ncu_source_summary(tmp_path):
    """profiling/ncu_source.py on a small CSV shaped like ncu's source page: totals, region shares, runs of equally
    executed instructions and the instructions with the most stall samples; a second kernel's listing is ignored."""
    import gzip

    from profiling import ncu_source

    header = ["Address", "Source", "Warp Stall Sampling (All Samples)", "Instructions Executed"]
    body = [["0x0", "  LDC R1, c[0x0][0x28]", "2", "10"], ["0x10", "ULDC UR4, c[0x0][0x210]", "1", "40"],
            ["0x20", "@P0 BRA 0x10", "5", "40"], ["0x30", "STS [R5], R6", "12", "10"], ["0x40", "EXIT", "0", "0"]]
    text = "\n".join(",".join(f'"{c}"' for c in row) for row in
                     [["Kernel Name", "k1"], header, *body, ["Kernel Name", "k2"], header, ["0x0", "NOP", "99", "99"]])
    path = tmp_path / "src.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(text + "\n")
    kernel, instructions = ncu_source.read_source_csv(str(path))
    assert kernel == "k1" and [i.executed for i in instructions] == [10, 40, 40, 10, 0]
    assert ncu_source.straight_runs(instructions) == [(0, 1), (1, 3), (3, 4)]
    lines = ncu_source.summary(instructions, regions=[0, 1, 3], top=2)
    assert lines[0] == "100 warp instructions, 20 stall samples"
    assert "  SASS     1-    2:  80.0% of instructions,  30.0% of stall samples" in lines
    assert lines[-2:] == ["      2        40     5  @P0 BRA 0x10", "      3        10    12  STS [R5], R6"]
    (tmp_path / "bad.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="not an ncu source-page CSV"):
        ncu_source.read_source_csv(str(tmp_path / "bad.csv"))


def test_fuse_scaling_times_a_checked_call():
    """profiling/fuse_scaling.py's measurement on the CPU: the output check passes and the time and floor are real."""
    from profiling import bench_fuse, fuse_scaling, harness

    specs = bench_fuse.SIXTEEN[:3]
    us, floor = fuse_scaling.fuse_time_us(specs, 2, "cpu", bandwidth=1e10)
    assert us > 0 and floor > 0
    streams, tgt = bench_fuse.make_inputs(2, fuse_scaling.T, specs, "cpu")
    rows = [harness.rows_needed(times, tgt) for _, times in streams]
    assert floor == pytest.approx(bench_fuse.case_bytes(2, fuse_scaling.T, specs, torch.bfloat16, rows) / 1e10 * 1e6)


def test_timed_cases_check_before_timing(monkeypatch):
    """bench_resample.time_resample and bench_fuse.time_fuse (the benches', sweep's and fuse_scaling's measurement)
    time only a call whose output matched the float64 reference, and hand back the checked set first."""
    import robocache
    from profiling import bench_fuse, bench_resample, harness

    timed = bench_resample.time_resample(3, 40, 17, 8, torch.float32, "cpu", variant="mask")
    assert timed.time_us > 0 and timed.rel_err < 1e-5 and 0 < timed.rows_read <= 3 * 40
    data, src, tgt = timed.sets[0]
    assert torch.equal(timed.out, robocache.resample(data, src, tgt, tolerance=1e-3))
    specs = ((30, 8, "fp32"), (70, 4, "fp32"))
    timed = bench_fuse.time_fuse(2, 11, specs, torch.float32, "cpu")
    assert timed.out.shape == (2, 11, 12) and timed.nbytes == bench_fuse.case_bytes(
        2, 11, specs, torch.float32, [harness.rows_needed(t, timed.sets[0][1]) for _, t in timed.sets[0][0]])

    real_resample, real_fuse = robocache.resample, robocache.fuse
    monkeypatch.setattr(robocache, "resample", lambda *a, **k: real_resample(*a, **k) * 1.01)
    with pytest.raises(AssertionError, match="not timing a wrong kernel"):
        bench_resample.time_resample(3, 40, 17, 8, torch.float32, "cpu")
    monkeypatch.setattr(robocache, "fuse", lambda *a, **k: real_fuse(*a, **k).flip(1))
    with pytest.raises(AssertionError, match="not timing a wrong kernel"):
        bench_fuse.time_fuse(2, 11, specs, torch.float32, "cpu")
