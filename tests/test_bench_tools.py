"""The bench command, its regression gate, the README generator and the profiler-trace helper."""

import json
import os
import sys

import pytest
import torch

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
    failures = bench_all.check_against([_row(vs_eager=8.0)], baseline)  # 20% behind the baseline ratio
    assert failures and "vs_eager" in failures[0]
    assert bench_all.check_against([_row(vs_eager=9.5)], baseline) == []  # within 10%
    listed = {"rows": [_row(pct_floor=70.0, vs_compiled=0.7)],
              "known_misses": {m: "measured, reason in NOTES.md" for m in misses}}
    assert bench_all.check_against(slow, listed) == []


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
