"""One call of resample and of torch.compile of its reference at one shape, inside an NVTX range named
`measure`, for Nsight Compute:

    ncu --nvtx --nvtx-include "measure/" --set full -o resample python profiling/ncu_resample.py [B S T D dtype]
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import robocache  # noqa: E402
from profiling.bench_resample import DTYPES, make_inputs, reference_fn  # noqa: E402


def main(argv: list[str]) -> None:
    B, S, T, D = (int(x) for x in (argv[:4] or (256, 2000, 1000, 256)))
    dtype = DTYPES[argv[4] if len(argv) > 4 else "bf16"]
    data, src, tgt = make_inputs(B, S, T, D, dtype, "cuda")
    compiled = torch.compile(reference_fn("plain"))
    for _ in range(3):  # compile and warm up outside the range
        robocache.resample(data, src, tgt)
        compiled(data, src, tgt)
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_push("measure")
    robocache.resample(data, src, tgt)
    compiled(data, src, tgt)
    torch.cuda.nvtx.range_pop()
    torch.cuda.synchronize()


if __name__ == "__main__":
    main(sys.argv[1:])
