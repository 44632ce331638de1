"""Every op's benchmark in one run, with PERF.md targets and a regression gate.

    python -m robocache bench [--ops resample,voxelize,fuse] [--quick] [--device cuda|cpu]
                              [--json PATH] [--markdown PATH] [--plot PATH] [--check BASELINE.json]

Each op's `profiling/bench_<op>.py` gates its output on the float64 reference before timing, and times
RoboCache, the eager reference and torch.compile of the reference in this process. `--check` compares
ratios (% of the byte floor, vs torch.compile) against a committed baseline of the same device: more than
10% behind fails (rows under 20 us are launch-bound and not compared), and so does a PERF.md target that
is missed, unless the baseline lists it under `known_misses` with the reason (tracked debt, not silence).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from profiling import harness  # noqa: E402

ALL_OPS = ("resample", "fuse", "voxelize")

# PERF.md targets on CUDA: (op, case prefix, dtype or None, metric, comparison, threshold).
TARGETS = [
    ("resample", "B256 S2000 T1000 D256", None, "pct_floor", ">=", 90.0),
    ("resample", "B256 S2000 T1000 D256", None, "vs_compiled", ">=", 1.0),
    ("resample", "B32 S500 T256 D256", "bf16", "time_us", "<=", 10.0),
    ("resample", "B4 S100 T50 D32", "bf16", "eager_call_us", "<=", 6.0),
    ("fuse", "3 streams B256 T500", None, "pct_floor", ">=", 80.0),
    ("fuse", "3 streams B256 T500", None, "vs_compiled", ">=", 4.0),
    ("fuse", "3 streams B32 T50", None, "eager_call_us", "<=", 8.0),
    ("fuse", "16 streams B64 T200", None, "pct_floor", ">=", 60.0),
    ("voxelize", "count B1 N16384K", None, "gpts_per_s", ">=", 120.0),
    ("voxelize", "occupancy B1 N16384K", None, "gpts_per_s", ">=", 150.0),
    ("voxelize", "mean B1 N16384K F8", None, "gpts_per_s", ">=", 20.0),
    ("voxelize", "max B1 N16384K F8", None, "gpts_per_s", ">=", 20.0),
    ("voxelize", "mean det B1 N16384K F8", None, "gpts_per_s", ">=", 5.0),
    ("voxelize", "count B8 N2048K", None, "vs_single_cloud_rate", ">=", 0.8),
]
RATIO_TOLERANCE = 0.9  # a ratio may fall 10% behind the baseline's


def metric(row: dict, name: str):
    if name in row:
        return row[name]
    return row.get("extra", {}).get(name)


def row_key(row: dict) -> str:
    return f"{row['op']} | {row['case']} | {row['dtype']}"


def check_targets(rows: list[dict]) -> list[str]:
    misses = []
    for op, prefix, dtype, name, cmp, threshold in TARGETS:
        for row in rows:
            if row["op"] != op or not row["case"].startswith(prefix) or (dtype and row["dtype"] != dtype):
                continue
            value = metric(row, name)
            if value is None:
                continue
            ok = value >= threshold if cmp == ">=" else value <= threshold
            if not ok:
                misses.append(f"{row_key(row)}: {name} {value:.3g} (target {cmp} {threshold:g})")
    return misses


# Rows faster than this are launch-bound: between two lent H100s, the replay time of resample B4 moved 4.2 ->
# 5.7 us with the same kernel and torch.compile's of B32 12.5 -> 16.6 us (profiling/NOTES.md), more than the
# gate's 10%, so their ratios are not gated.
MIN_GATED_US = 20.0
# The ratios the gate compares. vs_eager is reported but not gated: the eager reference of small cases is
# host-bound, so it measures the lent machine's CPU (occupancy 1M: eager 760 vs 586 us on two H100 hosts).
GATED_RATIOS = ("pct_floor", "vs_compiled")


def check_against(rows: list[dict], baseline: dict) -> list[str]:
    """Failures: gated ratios more than 10% behind the baseline's, and target misses the baseline does not list."""
    failures = []
    base_rows = {row_key(r): r for r in baseline["rows"]}
    for row in rows:
        base = base_rows.get(row_key(row))
        if base is None or min(row["time_us"], base["time_us"]) < MIN_GATED_US:
            continue
        for name in GATED_RATIOS:
            now, then = row.get(name), base.get(name)
            if now is not None and then is not None and now < RATIO_TOLERANCE * then:
                failures.append(f"{row_key(row)}: {name} {now:.2f}, baseline {then:.2f} (more than 10% behind)")
    known = baseline.get("known_misses", {})
    for miss in check_targets(rows):
        key = miss.split(":")[0]
        if not any(key == k.split(":")[0] and miss.split(":")[1].split()[0] in k for k in known):
            failures.append(f"missed target, not in the baseline's known_misses: {miss}")
    return failures


def plot(rows: list[dict], env: dict, path: str) -> None:
    """Horizontal bars (long case names stay readable): % of the byte floor per op and shape."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['op']}: {r['case']} {r['dtype']}" for r in rows]
    values = [r["pct_floor"] for r in rows]
    colors = {"resample": "#4C72B0", "fuse": "#55A868", "voxelize": "#C44E52"}
    fig, ax = plt.subplots(figsize=(11, 0.38 * len(rows) + 1.6))
    y = list(range(len(rows)))[::-1]  # first row on top
    ax.barh(y, values, color=[colors.get(r["op"], "gray") for r in rows])
    ax.axvline(100, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, max(110, max(values, default=0) * 1.1))
    ax.set_xlabel("% of the byte floor: bytes moved / copy bandwidth of the same run (higher is better)", fontsize=9)
    ax.set_title(f"RoboCache on {env['device']} (torch {env['torch']}, commit {env['commit']})", fontsize=10)
    for yi, r in zip(y, rows):
        ax.text(r["pct_floor"] + 1, yi, f"{r['pct_floor']:.0f}%  ({r['time_us']:.1f} us)", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _progress(items, desc):
    try:
        from tqdm import tqdm

        return tqdm(items, desc=desc, file=sys.stderr)
    except ImportError:
        return items


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m robocache bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", default=",".join(ALL_OPS), help="comma-separated subset of " + ", ".join(ALL_OPS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    p.add_argument("--json")
    p.add_argument("--markdown")
    p.add_argument("--plot", help="PNG bar chart of %% of floor per op and shape (matplotlib)")
    p.add_argument("--check", help="baseline JSON of the same device; non-zero exit on regressions or misses")
    p.add_argument("--from-json", help="skip the run: take the rows of an earlier --json (to plot or check it)")
    args = p.parse_args(argv)

    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    unknown = [o for o in ops if o not in ALL_OPS]
    if unknown:
        p.error(f"unknown ops {unknown}; choose from {ALL_OPS}")
    rows, env = [], None
    if args.from_json:
        with open(args.from_json) as f:
            earlier = json.load(f)
        rows, env = earlier["rows"], earlier["environment"]
        args.device = env["device_type"]
    for op in [] if args.from_json else _progress(ops, "bench"):
        module = importlib.import_module(f"profiling.bench_{op}")
        op_rows, env = module.run(args.device, args.quick)
        rows += [r.as_dict() for r in op_rows]
    table_rows = [harness.Row(**{k: v for k, v in r.items() if k in harness.Row.__dataclass_fields__}) for r in rows]
    print(harness.markdown_table(table_rows, env))
    misses = check_targets(rows) if args.device.startswith("cuda") else []
    for miss in misses:
        print("target missed:", miss)
    result = {"environment": env, "rows": rows, "target_misses": misses}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(harness.markdown_table(table_rows, env))
            f.writelines(f"\n- target missed: {m}" for m in misses)
    if args.plot:
        try:
            plot(rows, env, args.plot)
        except ImportError:  # the GPU image may lack matplotlib: plot later with --from-json
            print("no matplotlib here: --plot skipped (run again with --from-json JSON --plot PNG)")
    if args.check:
        with open(args.check) as f:
            failures = check_against(rows, json.load(f))
        for failure in failures:
            print("CHECK FAILED:", failure)
        if failures:
            return 1
        print("bench --check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
