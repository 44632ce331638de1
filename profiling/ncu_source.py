"""Where a kernel's instructions and stall samples go, per SASS instruction, from Nsight Compute's source counters:

    ncu --nvtx --nvtx-include "measure/" --clock-control none --section SourceCounters -o src \\
        python profiling/ncu_ops.py fuse16
    ncu -i src.ncu-rep --page source --csv --print-source sass > src.csv
    python profiling/ncu_source.py src.csv [--regions 0,27,37,926] [--top 25]

The CSV may be gzip-compressed. Prints the kernel's warp instructions and stall samples, the share of each region
(`--regions` are SASS indices a region starts at, as read off the listing; the last runs to the end), the hottest
straight-line runs (consecutive instructions executed equally often: loop bodies and their set-up) and the
instructions with the most stall samples. This is how profiling/NOTES.md found the 16-stream fuse launch's costs.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import sys
from dataclasses import dataclass


@dataclass
class Instruction:
    index: int
    executed: int  # warp-level instructions executed
    samples: int  # warp stall samples (all samples)
    sass: str


def read_source_csv(path: str) -> tuple[str, list[Instruction]]:
    """The kernel name and its instructions from `ncu --page source --csv --print-source sass` (first kernel only)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        rows = list(csv.reader(io.StringIO(f.read())))
    if len(rows) < 2 or rows[0][:1] != ["Kernel Name"]:
        raise ValueError(f"{path}: not an ncu source-page CSV (its first row should name the kernel)")
    kernel, header = rows[0][1], rows[1]
    try:
        col_exec = header.index("Instructions Executed")
        col_samples = header.index("Warp Stall Sampling (All Samples)")
        col_source = header.index("Source")
    except ValueError as e:
        raise ValueError(f"{path}: missing column ({e}); collect with --section SourceCounters") from None
    instructions = []
    for row in rows[2:]:
        if row[:1] == ["Kernel Name"]:
            break  # the next kernel's listing
        instructions.append(Instruction(len(instructions), int(row[col_exec] or 0), int(row[col_samples] or 0),
                                        row[col_source].strip()))
    return kernel, instructions


def straight_runs(instructions: list[Instruction]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive executed instructions with the same execution count."""
    runs, start = [], None
    for i, ins in enumerate(instructions + [Instruction(-1, -1, 0, "")]):
        if start is not None and ins.executed != instructions[start].executed:
            runs.append((start, i))
            start = None
        if start is None and ins.executed > 0:
            start = i
    return runs


def summary(instructions: list[Instruction], regions: list[int], top: int) -> list[str]:
    total = sum(i.executed for i in instructions)
    samples = sum(i.samples for i in instructions)

    def share(a: int, b: int) -> str:
        part = instructions[a:b]
        return (f"{100 * sum(i.executed for i in part) / max(total, 1):5.1f}% of instructions, "
                f"{100 * sum(i.samples for i in part) / max(samples, 1):5.1f}% of stall samples")

    lines = [f"{total} warp instructions, {samples} stall samples"]
    if regions:
        lines.append("regions:")
        bounds = sorted(set(regions)) + [len(instructions)]
        lines += [f"  SASS {a:5d}-{b - 1:5d}: {share(a, b)}" for a, b in zip(bounds, bounds[1:]) if a < b]
    runs = sorted(straight_runs(instructions), key=lambda r: -(r[1] - r[0]) * instructions[r[0]].executed)[:top]
    lines.append("hottest straight-line runs (SASS range, length, times executed):")
    for a, b in sorted(runs):
        lines.append(f"  {a:5d}-{b - 1:5d} x{b - a:3d} {instructions[a].executed:9d}  {share(a, b)}  "
                     f"{instructions[a].sass[:40]} .. {instructions[b - 1].sass[:40]}")
    lines.append("most stall samples (SASS index, executed, samples):")
    for ins in sorted(sorted(instructions, key=lambda i: -i.samples)[:top], key=lambda i: i.index):
        lines.append(f"  {ins.index:5d} {ins.executed:9d} {ins.samples:5d}  {ins.sass[:80]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv")
    p.add_argument("--regions", default="", help="comma-separated SASS indices where regions start")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    kernel, instructions = read_source_csv(args.csv)
    regions = [int(x) for x in args.regions.split(",") if x]
    print(kernel)
    print("\n".join(summary(instructions, regions, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
