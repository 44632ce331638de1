"""Sweep of resample's CUDA tile shape: GPU time of each bench case under each tuning setting.

    python profiling/sweep_resample.py [--settings ITEMS:STAGE,...] [--json PATH]

Each setting runs in its own process, since the kernel reads its tuning variables once:
ROBOCACHE_TUNE_ITEMS (work items per thread of a forward tile; 0 = the built-in choice) and
ROBOCACHE_TUNE_STAGE (0: search source times in global memory even when they would fit in shared memory). Outputs are checked
against the float64 reference before timing, as in bench_resample.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child() -> None:
    import torch

    import robocache
    from profiling import harness
    from profiling.bench_resample import DTYPES, GPU_CASES, MAX_ERR, make_inputs
    from robocache.reference import resample_ref

    device = "cuda"
    results = {}
    for B, S, T, D, dname, variant in GPU_CASES:
        if variant != "plain":
            continue
        dtype = DTYPES[dname]
        data, src, tgt = make_inputs(B, S, T, D, dtype, device)
        out = robocache.resample(data, src, tgt)
        harness.check_output("sweep", out, resample_ref(data.double(), src, tgt)[0], MAX_ERR[dtype])
        nbytes = B * S * D * dtype.itemsize + B * T * D * dtype.itemsize
        sets = harness.rotation(lambda: make_inputs(B, S, T, D, dtype, device, seed=1), nbytes, device)
        results[f"B{B} S{S} T{T} D{D} {dname}"] = harness.median_time_us(
            lambda i: robocache.resample(*sets[i]), device, n_sets=len(sets))
        torch.cuda.empty_cache()
    print("RESULT " + json.dumps(results))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default="0:1,2:1,4:1,8:1,16:1,16:0")
    p.add_argument("--json")
    args = p.parse_args()
    names = ("ROBOCACHE_TUNE_ITEMS", "ROBOCACHE_TUNE_STAGE")
    settings = [dict(zip(names, spec.split(":"))) for spec in args.settings.split(",")]
    rows = []
    for setting in settings:
        env = dict(os.environ, **setting)
        proc = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(setting, "FAILED", proc.stderr[-2000:])
            continue
        times = json.loads(lines[-1][len("RESULT "):])
        rows.append({"setting": setting, "time_us": times})
        print(" ".join(f"{k}={v}" for k, v in setting.items()), "|",
              " | ".join(f"{case}: {t:.1f}" for case, t in times.items()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
