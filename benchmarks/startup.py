"""How fast does provscan start, next to picklescan and modelscan, measured in the same run?

Times `--help`, `--version` and a check of the demo model (fixtures/demo/tiny-llama) as a
user's shell runs them: a fresh process each time, the median of --repeat runs, wall time and
CPU time (user + system of the process and its children, from getrusage). The peers are
measured on `--help` and on scanning the same demo folder.

    python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install modelscan picklescan
    python benchmarks/startup.py --peers /tmp/peers-venv [--repeat 7]

Without --peers only provscan is measured.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "fixtures" / "demo" / "tiny-llama"


def _provscan() -> list[str]:
    script = Path(sys.executable).parent / "provscan"
    return [str(script)] if script.exists() else [sys.executable, "-m", "provscan"]


# As installed: pip compiles every module to bytecode at install time (an editable install
# writes it on first import). PYTHONDONTWRITEBYTECODE, set on some CI images, would make each
# run compile provscan's sources again and measure the compiler, not the start-up.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(argv: list[str], repeat: int) -> tuple[float, float, int]:
    """Median wall seconds, median CPU seconds, and the last exit code of `argv`, after one
    run that is not counted (it writes the bytecode an installed package already has)."""
    subprocess.run(argv, capture_output=True, check=False, cwd=REPO, env=ENV)
    walls, cpus = [], []
    code = 0
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, check=False, cwd=REPO, env=ENV)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        code = proc.returncode
    return statistics.median(walls), statistics.median(cpus), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, help="a virtualenv with modelscan and picklescan")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    provscan = _provscan()
    cases: list[tuple[str, list[str]]] = [
        ("provscan --help", [*provscan, "--help"]),
        ("provscan --version", [*provscan, "--version"]),
        ("provscan check demo", [*provscan, "check", str(DEMO), "-q"]),
    ]
    if args.peers is not None:
        bin_ = args.peers / "bin"
        cases += [
            ("picklescan --help", [str(bin_ / "picklescan"), "--help"]),
            ("picklescan -p demo", [str(bin_ / "picklescan"), "-p", str(DEMO)]),
            ("modelscan --help", [str(bin_ / "modelscan"), "--help"]),
            ("modelscan -p demo", [str(bin_ / "modelscan"), "-p", str(DEMO)]),
        ]
    results = {}
    print(f"{'command':<24} {'wall s':>8} {'cpu s':>8} {'exit':>5}   (median of {args.repeat})")
    for name, argv in cases:
        wall, cpu, code = measure(argv, args.repeat)
        results[name] = (wall, cpu)
        print(f"{name:<24} {wall:8.3f} {cpu:8.3f} {code:5d}")
    if args.peers is not None:
        help_wall = results["provscan --help"][0]
        check_wall = results["provscan check demo"][0]
        print()
        for peer in ("picklescan", "modelscan"):
            print(
                f"provscan/{peer}: --help {help_wall / results[f'{peer} --help'][0]:.2f}x, "
                f"scan of the demo {check_wall / results[f'{peer} -p demo'][0]:.2f}x (wall)"
            )
    print(f"\ncores available: {len(os.sched_getaffinity(0))}")


if __name__ == "__main__":
    main()
