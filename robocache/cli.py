"""`python -m robocache info | selftest | demo | bench`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robocache", description="RoboCache: GPU data ops for robot learning")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, torch/CUDA, which ops have CPU/CUDA kernels, GPU")
    sub.add_parser("selftest", help="run every op once against the float64 reference")
    demo = sub.add_parser("demo", help="resample an embedded multi-rate robot log to 50 Hz")
    demo.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    sub.add_parser("bench", help="every op's benchmark; `python -m robocache bench --help` for options",
                   add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the bench harness parses its own options
        return _bench(argv[1:])
    args = parser.parse_args(argv)

    import robocache

    if args.command == "info":
        robocache.print_installation_info()
        return 0
    if args.command == "selftest":
        robocache.self_test()
        print("robocache self-test passed")
        return 0
    if args.command == "demo":
        from robocache.demo import run_demo

        run_demo(args.device)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


def _bench(argv: list[str]) -> int:
    import os

    # The benchmarks live in the repository's profiling/ folder, beside the (editable) package.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, "profiling", "bench_all.py")):
        print("robocache bench: needs a source checkout (profiling/ was not found next to the package)")
        return 2
    sys.path.insert(0, root)
    from profiling.bench_all import main as bench_main

    return bench_main(argv)


if __name__ == "__main__":
    sys.exit(main())
