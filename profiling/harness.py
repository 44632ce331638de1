"""Shared benchmark harness: timing, the copy-bandwidth ceiling, correctness gates and result files.

Every benchmark (one script per op) builds its inputs, checks the RoboCache output against the float64
reference *before* timing anything, then times RoboCache, the eager reference and `torch.compile` of the
reference in the same process, and reports each against the byte floor (bytes read once + written once,
over the copy bandwidth measured in this run). See PERF.md.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_time_us(fn: Callable[[int], object], device: str, *, warmup: int = 5, min_reps: int = 20,
                   min_seconds: float = 0.2, n_sets: int = 1) -> float:
    """Median device time of one `fn(i)` call in microseconds, `i` selecting one of `n_sets` input sets.

    CUDA: each input set's call is captured once in a CUDA graph, and the graphs are replayed in turn
    between two events, so the number is the GPU time of the op (host overhead is reported separately by
    `host_call_time_us`) and rotating sets keeps L2 from serving inputs larger than a single set.
    CPU: the wall clock around each call.
    """
    if device.startswith("cuda"):
        try:
            return _cuda_graph_time_us(fn, n_sets, warmup=warmup, min_reps=min_reps, min_seconds=min_seconds)
        except RuntimeError as e:  # e.g. a baseline that copies from pageable host memory cannot be captured
            print(f"  (not capturable, timed with events around each call instead: {str(e)[:80]})", file=sys.stderr)
            return _cuda_event_time_us(fn, n_sets, warmup=warmup, min_reps=min_reps, min_seconds=min_seconds)
    for i in range(warmup):
        fn(i % n_sets)
    times: list[float] = []
    start_all = time.perf_counter()
    i = 0
    while (len(times) < min_reps or (time.perf_counter() - start_all) < min_seconds) and len(times) < 2000:
        t0 = time.perf_counter()
        fn(i % n_sets)
        times.append((time.perf_counter() - t0) * 1e6)
        i += 1
    return statistics.median(times)


def _cuda_event_time_us(fn, n_sets, *, warmup, min_reps, min_seconds) -> float:
    """Events around each eager call: includes the host time whenever the GPU waits for the launch."""
    for i in range(warmup):
        fn(i % n_sets)
    torch.cuda.synchronize()
    times: list[float] = []
    start_all = time.perf_counter()
    i = 0
    while (len(times) < min_reps or (time.perf_counter() - start_all) < min_seconds) and len(times) < 2000:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(i % n_sets)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)
        i += 1
    return statistics.median(times)


def _cuda_graph_time_us(fn, n_sets, *, warmup, min_reps, min_seconds) -> float:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (and any lazy compilation) outside the capture
        for i in range(max(warmup, n_sets)):
            fn(i % n_sets)
    torch.cuda.current_stream().wait_stream(side)
    graphs = []
    for i in range(n_sets):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn(i)
        graphs.append(graph)
    for graph in graphs:
        graph.replay()
    torch.cuda.synchronize()
    times: list[float] = []
    start_all = time.perf_counter()
    while (len(times) < min_reps or (time.perf_counter() - start_all) < min_seconds) and len(times) < 2000:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for graph in graphs:
            graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / len(graphs))
    del graphs
    return statistics.median(times)


def host_call_time_us(fn: Callable[[], object], device: str, calls: int = 2000) -> float:
    """Wall time per call of a whole Python call issued back to back (launch-bound small shapes)."""
    for _ in range(20):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / calls * 1e6


def copy_bandwidth(device: str, nbytes: int = 1 << 30) -> float:
    """Device-to-device (or memcpy on CPU) copy bandwidth in bytes/s, counting bytes read + written."""
    if not device.startswith("cuda"):
        nbytes = 1 << 27
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    if not device.startswith("cuda"):
        t = median_time_us(lambda i: dst.copy_(src), device, warmup=3, min_reps=10)
        return 2 * nbytes / (t * 1e-6)
    # Events around eager copies (1 GiB: launch overhead is noise). Not a graph: a captured copy becomes a
    # memcpy node that may run on a copy engine, which measured ~20% slower than the copy kernel.
    times = []
    for _ in range(13):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    return 2 * nbytes / statistics.median(times[3:])


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm().clamp(min=1e-30)).item()


def check_output(name: str, out: torch.Tensor, ref: torch.Tensor, max_rel_err: float) -> float:
    """The correctness gate: raise before timing when the output is wrong."""
    if out.shape != ref.shape:
        raise AssertionError(f"{name}: shape {tuple(out.shape)} != reference {tuple(ref.shape)}")
    if not torch.isfinite(out.double()).all() and not torch.equal(out.double().isnan(), ref.double().isnan()):
        raise AssertionError(f"{name}: non-finite values the reference does not have")
    err = relative_error(out, ref)
    if not err <= max_rel_err:
        raise AssertionError(f"{name}: relative L2 error {err:.3g} > {max_rel_err:.3g}; not timing a wrong kernel")
    return err


def rotation(make: Callable[[], tuple], bytes_per_set: int, device: str, cache_bytes: int | None = None) -> list:
    """Enough independent input sets that cycling through them defeats the L2 cache (2x its size)."""
    if not device.startswith("cuda"):
        return [make()]
    if cache_bytes is None:
        cache_bytes = torch.cuda.get_device_properties(device).L2_cache_size
    n = max(1, min(16, -(-2 * cache_bytes // max(bytes_per_set, 1))))
    return [make() for _ in range(n)]


def rows_needed(times: torch.Tensor, tgt: torch.Tensor) -> int:
    """Source rows [B,S] some target [B,T] needs (the samples left and right of each target): what the floor reads."""
    B, S = times.shape
    left = (torch.searchsorted(times.contiguous(), tgt.contiguous(), right=True) - 1).clamp(0, S - 1)
    used = torch.zeros(B, S, dtype=torch.bool, device=times.device)
    used.scatter_(1, left, True).scatter_(1, (left + 1).clamp(max=S - 1), True)
    return int(used.sum())


@dataclass
class CheckedTiming:
    """One op call timed after its output passed the correctness gate: what a bench row and the tuning tools need."""
    time_us: float     # GPU time per call (median_time_us over the rotating sets)
    nbytes: int        # bytes of the byte floor
    rows_read: int     # source rows some target needs, over all streams (the floor counts only these)
    rel_err: float     # relative L2 error of `out` against the float64 reference
    out: torch.Tensor  # the output of sets[0], the checked input set
    sets: list         # the rotating input sets


def run_tuning_settings(script: str, settings: str, child_args: tuple = ()) -> list[tuple[str, dict, dict | None]]:
    """Runs `script --child *child_args` once per tuning setting, each in its own process (the kernels read their
    ROBOCACHE_TUNE_* variables once per process). `settings` is a comma-separated list of `:`-separated KEY=VALUE
    pairs, KEY standing for ROBOCACHE_TUNE_<KEY>; an empty setting is the built-in choice. The child prints its
    results as one line `RESULT <json>`. Returns (label, tuning variables, results) per setting, results None where
    the child failed (its output is printed)."""
    runs = []
    for spec in settings.split(","):
        pairs = (pair.split("=") for pair in spec.split(":") if pair)
        tune = {f"ROBOCACHE_TUNE_{key}": value for key, value in pairs}
        label = spec or "built-in"
        proc = subprocess.run([sys.executable, script, "--child", *child_args], env=dict(os.environ, **tune),
                              capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(f"setting {label!r} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}", flush=True)
            runs.append((label, tune, None))
            continue
        runs.append((label, tune, json.loads(lines[-1][len("RESULT "):])))
    return runs


def try_compile(fn: Callable) -> Callable | None:
    try:
        return torch.compile(fn, dynamic=False)
    except Exception as e:  # noqa: BLE001 - reported in the row, never silently
        print(f"torch.compile unavailable: {e}", file=sys.stderr)
        return None


def compiled_time_us(ref: Callable, args: tuple, sets: list, device: str, *, check: tuple | None = None,
                     warmup: int = 5) -> float | None:
    """The torch.compile baseline: `ref` compiled on `args` outside the timing (its first output checked
    against check = (expected, max_rel_err) when given), then timed over the input `sets` as
    `median_time_us` does with at least 5 repetitions. None where torch.compile is unavailable."""
    compiled = try_compile(ref)
    if compiled is None:
        return None
    got = compiled(*args)
    if check is not None:
        expected, max_err = check
        check_output("torch.compile reference", got[0], expected, max_err)
    return median_time_us(lambda i: compiled(*sets[i]), device, warmup=warmup, min_reps=5, n_sets=len(sets))


@dataclass
class Row:
    op: str
    case: str
    dtype: str
    time_us: float
    floor_us: float
    bytes: int
    rel_err: float
    eager_us: float | None = None
    compiled_us: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pct_floor(self) -> float:
        return 100.0 * self.floor_us / self.time_us if self.time_us > 0 else float("nan")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["pct_floor"] = self.pct_floor
        d["vs_eager"] = (self.eager_us / self.time_us) if self.eager_us else None
        d["vs_compiled"] = (self.compiled_us / self.time_us) if self.compiled_us else None
        return d


def environment(device: str, bandwidth: float) -> dict:
    # ROBOCACHE_COMMIT wins: where the tree travels to another machine, its .git (if any) may be stale.
    commit = os.environ.get("ROBOCACHE_COMMIT")
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=os.path.dirname(RESULTS_DIR)).stdout.strip()
        except OSError:
            commit = ""
    commit = commit or "unknown"
    return {
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "cpu",
        "device_type": "cuda" if device.startswith("cuda") else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "copy_bandwidth_GBps": bandwidth / 1e9,
    }


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def markdown_table(rows: list[Row], env: dict) -> str:
    lines = [
        f"Device: {env['device']} | torch {env['torch']} | CUDA {env['cuda']} | commit {env['commit']} | "
        f"copy bandwidth {env['copy_bandwidth_GBps']:.0f} GB/s | {env['date']}",
        "",
        f"Command: `{env['command']}`",
        "",
        "| op | case | dtype | robocache (us) | % of floor | eager (us) | vs eager | torch.compile (us) | vs compile | rel err | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r.as_dict()
        notes = ", ".join(f"{k}={fmt(v, '.2f') if isinstance(v, float) else v}" for k, v in r.extra.items())
        lines.append(
            f"| {r.op} | {r.case} | {r.dtype} | {r.time_us:.1f} | {r.pct_floor:.0f}% | {fmt(r.eager_us)} | "
            f"{fmt(d['vs_eager'], '.1f')}x | {fmt(r.compiled_us)} | {fmt(d['vs_compiled'], '.2f')}x | "
            f"{r.rel_err:.1e} | {notes} |"
        )
    return "\n".join(lines) + "\n"


def device_slug(device_name: str) -> str:
    """A GPU's name as results and baselines spell it in file names: "NVIDIA H100 80GB HBM3" -> NVIDIA_H100_80GB_HBM3."""
    return device_name.replace(" ", "_").replace("/", "_")


def write_results(name: str, rows: list[Row], env: dict, json_path: str | None = None,
                  md_path: str | None = None) -> tuple[str, str]:
    slug = device_slug(env["device"]) if env["device_type"] == "cuda" else "cpu"
    json_path = json_path or os.path.join(RESULTS_DIR, f"{name}_{slug}.json")
    md_path = md_path or os.path.join(RESULTS_DIR, f"{name}_{slug}.md")
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump({"environment": env, "rows": [r.as_dict() for r in rows]}, f, indent=1)
    with open(md_path, "w") as f:
        f.write(markdown_table(rows, env))
    return json_path, md_path


def run_cases(cases: list[tuple], bench_case: Callable, device: str,
              case_kwargs: Callable[[int], dict] | None = None) -> tuple[list[Row], dict]:
    """Measures the copy ceiling and the environment once, then runs `bench_case(*case, device=...,
    bandwidth=..., **case_kwargs(k))` for every case, printing each row as it finishes."""
    bandwidth = copy_bandwidth(device)
    env = environment(device, bandwidth)
    rows = []
    for k, case in enumerate(cases):
        extra = case_kwargs(k) if case_kwargs else {}
        rows.append(bench_case(*case, device=device, bandwidth=bandwidth, **extra))
        print(markdown_table(rows[-1:], env).splitlines()[-1], flush=True)
    return rows, env


def bench_main(name: str, run: Callable, doc: str, argv=None, with_cases: bool = False) -> None:
    """The command line every `profiling/bench_<op>.py` shares: run, write JSON + markdown, print the table."""
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json")
    p.add_argument("--markdown")
    if with_cases:
        p.add_argument("--cases", help="comma-separated indices into GPU_CASES (CUDA only), e.g. 1,3,5")
    args = p.parse_args(argv)
    kwargs = {}
    if with_cases and args.cases:
        kwargs["case_ids"] = [int(c) for c in args.cases.split(",")]
    rows, env = run(args.device, args.quick, **kwargs)
    paths = write_results(name, rows, env, args.json, args.markdown)
    print(markdown_table(rows, env))
    print("wrote", *paths)
