"""How do provscan, modelscan, picklescan, fickling and modelaudit compare on the bypass corpus, and on a big checkpoint?

Usage:
    python benchmarks/serialization.py [--peers-venv /tmp/peers-venv] [--timeout 120] [--big-gb N]

Peers live in their own venv so their dependencies never touch provscan's:
    python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install modelscan picklescan fickling modelaudit

How each tool's verdict is read (one file per run, the sample's path as the target):
- provscan: `python -m provscan inspect FILE --format json`; detected = any finding with
  severity "critical" (exit must be 0, the report was produced; anything else is an error).
- modelscan: `modelscan -p FILE`; exit 0 clean, 1 issues found (detected), 2 scan error,
  3 no supported file (the payload was not looked at: counted as missed / clean), 4 usage error.
- picklescan: `picklescan -p FILE`; exit 0 clean, 1 dangerous globals (detected), 2 scan failed.
  Suspicious-only output exits 0, so it counts as clean (default mode, not --strict).
- fickling: `fickling --check-safety FILE`; exit 0 likely safe, 1 unsafe (detected), 2 error.
- modelaudit: `modelaudit scan FILE`; exit 0 clean, 1 security findings (detected), 2 operational
  error / inconclusive / nothing scanned. Telemetry is disabled via PROMPTFOO_DISABLE_TELEMETRY.
A timeout is an error. Malicious: detected / missed / error; benign: false alarm / clean / error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `fixtures` importable

from fixtures.corpus_containers import container_samples  # noqa: E402
from fixtures.corpus_keras import keras_samples  # noqa: E402
from fixtures.serialization_corpus import Sample, build_corpus, skipped  # noqa: E402

PEER_INSTALL = (
    "python3 -m venv {venv} && {venv}/bin/pip install modelscan picklescan fickling modelaudit"
)


@dataclass(frozen=True)
class Run:
    code: int | None  # None: timed out
    out: str
    wall_s: float
    max_rss_kb: int


@dataclass(frozen=True)
class Tool:
    name: str
    argv: Callable[[Path], list[str]]
    # (run) -> "detected" | "clean" | "error"
    verdict: Callable[[Run], str]


TIME = Path("/usr/bin/time")


def run_measured(argv: list[str], timeout: float, env: dict[str, str]) -> Run:
    """Run one child; wall time and that child's own peak RSS. Measured by /usr/bin/time when
    present: os.wait4's ru_maxrss (and RUSAGE_CHILDREN) inherit this process's RSS at fork,
    so a big parent would hide every tool's real peak."""
    start = time.monotonic()
    rss_file = tempfile.NamedTemporaryFile(prefix="rss-", delete=False)  # noqa: SIM115 - /usr/bin/time writes it
    rss_file.close()
    if TIME.exists():
        argv = [str(TIME), "-f", "%M", "-o", rss_file.name, *argv]
    with tempfile.TemporaryFile() as sink:
        # Some tools (fickling) drop result files in their working directory.
        proc = subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tempfile.gettempdir(),
        )
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)  # stop Popen from waiting again
        wall = time.monotonic() - start
        sink.seek(0)
        out = sink.read().decode("utf-8", "replace")
    max_rss = usage.ru_maxrss
    text = Path(rss_file.name).read_text().strip().splitlines()
    os.unlink(rss_file.name)
    if TIME.exists() and text and text[-1].isdigit():
        max_rss = int(text[-1])
    return Run(None if timed_out else proc.returncode, out, wall, max_rss)


def _exit_code_verdict(detected: set[int], clean: set[int]) -> Callable[[Run], str]:
    def verdict(run: Run) -> str:
        if run.code in detected:
            return "detected"
        if run.code in clean:
            return "clean"
        return "error"

    return verdict


def _provscan_verdict(run: Run) -> str:
    if run.code != 0:
        return "error"
    try:
        report = json.loads(run.out[run.out.index("{") :])
    except ValueError:
        return "error"
    critical = [f for f in report.get("findings", []) if f.get("severity") == "critical"]
    return "detected" if critical else "clean"


def tools(peers: Path) -> list[Tool]:
    bin_ = peers / "bin"
    found = [
        Tool(
            "provscan",
            lambda p: [
                sys.executable,
                "-m",
                "provscan",
                "inspect",
                str(p),
                "--format",
                "json",
                "-q",
            ],
            _provscan_verdict,
        ),
        Tool(
            "modelscan",
            lambda p: [str(bin_ / "modelscan"), "-p", str(p)],
            _exit_code_verdict({1}, {0, 3}),
        ),
        Tool(
            "picklescan",
            lambda p: [str(bin_ / "picklescan"), "-p", str(p)],
            _exit_code_verdict({1}, {0}),
        ),
        Tool(
            "fickling",
            lambda p: [str(bin_ / "fickling"), "--check-safety", str(p)],
            _exit_code_verdict({1}, {0}),
        ),
        Tool(
            "modelaudit",
            lambda p: [str(bin_ / "modelaudit"), "scan", str(p)],
            _exit_code_verdict({1}, {0}),
        ),
    ]
    out = []
    for tool in found:
        exe = tool.argv(Path("x"))[0]
        if tool.name != "provscan" and not Path(exe).exists():
            print(f"# {tool.name}: not installed in {peers}; skipped", file=sys.stderr)
            continue
        out.append(tool)
    return out


def tool_versions(peers: Path) -> dict[str, str]:
    versions = {}
    for name in ("modelscan", "picklescan", "fickling", "modelaudit", "py7zr"):
        proc = subprocess.run(
            [
                str(peers / "bin" / "python"),
                "-c",
                f"import importlib.metadata as m; print(m.version({name!r}))",
            ],
            capture_output=True,
            text=True,
        )
        versions[name] = proc.stdout.strip() or "not installed"
    from provscan import __version__

    versions["provscan"] = __version__
    return versions


def _env(peers: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PROMPTFOO_DISABLE_TELEMETRY"] = "1"  # modelaudit phones home otherwise
    env["NO_COLOR"] = "1"
    return env


def corpus_matrix(peers: Path, timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix="provscan-corpus-") as tmp:
        root = Path(tmp)
        canary = root / "CANARY"
        samples = build_corpus(root / "files", canary)
        # The container and Keras corpora write flat files into the same folder.
        samples += container_samples(root / "files", canary)
        samples += keras_samples(root / "files", canary)
        active = tools(peers)
        env = _env(peers)
        print(
            f"corpus: {len(samples)} samples "
            f"({sum(s.malicious for s in samples)} malicious, "
            f"{sum(not s.malicious for s in samples)} benign)"
        )
        for gap in skipped():
            print(f"  not generated: {gap.name} ({gap.reason})")
        results: dict[str, dict[str, str]] = {}
        for sample in samples:
            results[sample.name] = {}
            for tool in active:
                run = run_measured(tool.argv(root / "files" / sample.path), timeout, env)
                results[sample.name][tool.name] = tool.verdict(run)
                if canary.exists():  # a scanner loaded the file: say so loudly, keep going
                    print(f"!! {tool.name} EXECUTED the payload of {sample.name}")
                    canary.unlink()
        _print_summary(samples, active, results)
        _print_matrix(samples, active, results)


def _print_summary(
    samples: list[Sample], active: list[Tool], results: dict[str, dict[str, str]]
) -> None:
    print()
    print(
        f"{'tool':<11} {'detected':>8} {'missed':>6} {'false alarms':>12} {'errors':>6}"
        f" {'not detected':>12}"
        f"   (of {sum(s.malicious for s in samples)} malicious /"
        f" {sum(not s.malicious for s in samples)} benign)"
    )
    for tool in active:
        det = sum(1 for s in samples if s.malicious and results[s.name][tool.name] == "detected")
        miss = sum(1 for s in samples if s.malicious and results[s.name][tool.name] == "clean")
        fa = sum(1 for s in samples if not s.malicious and results[s.name][tool.name] == "detected")
        err = sum(1 for s in samples if results[s.name][tool.name] == "error")
        # An error on a malicious file is not a detection: a gate that errors lets it through
        # or blocks everything. "not detected" = malicious samples missed or errored.
        undetected = sum(1 for s in samples if s.malicious) - det
        print(f"{tool.name:<11} {det:>8} {miss:>6} {fa:>12} {err:>6} {undetected:>12}")


def _print_matrix(
    samples: list[Sample], active: list[Tool], results: dict[str, dict[str, str]]
) -> None:
    # Cells: malicious -> DET / miss / err; benign -> FA (false alarm) / ok / err.
    def cell(sample: Sample, verdict: str) -> str:
        if verdict == "error":
            return "err"
        if sample.malicious:
            return "DET" if verdict == "detected" else "miss"
        return "FA" if verdict == "detected" else "ok"

    width = max(len(s.name) for s in samples)
    print()
    print(f"{'sample':<{width}} mal  " + " ".join(f"{t.name:>10}" for t in active))
    for sample in samples:
        row = " ".join(f"{cell(sample, results[sample.name][t.name]):>10}" for t in active)
        print(f"{sample.name:<{width}} {'yes' if sample.malicious else 'no ':<4} {row}")


def build_big_checkpoint(path: Path, gigabytes: float, tensor_mb: int = 512) -> int:
    """A real torch.save zip of about `gigabytes` GB without holding it in RAM: every tensor is
    an mmap of a sparse file (torch.from_file, shared=True), so its pages are file-backed and
    reclaimable while torch.save streams them out."""
    import torch

    backing_dir = path.parent / "backing"
    backing_dir.mkdir(exist_ok=True)
    total = int(gigabytes * 1e9)
    elems = tensor_mb * 1024 * 1024 // 4
    state: dict[str, torch.Tensor] = {}
    written = 0
    index = 0
    while written < total:
        n = min(elems, (total - written) // 4) or 1
        backing = backing_dir / f"t{index}"
        with backing.open("wb") as handle:
            handle.truncate(n * 4)  # sparse: no disk or RAM until read
        state[f"layers.{index}.weight"] = torch.from_file(
            str(backing), shared=True, size=n, dtype=torch.float32
        )
        written += n * 4
        index += 1
    torch.save(state, path)
    del state
    shutil.rmtree(backing_dir)
    return path.stat().st_size


def big_benchmark(peers: Path, gigabytes: float, timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix="provscan-big-", dir=os.environ.get("TMPDIR")) as tmp:
        path = Path(tmp) / "model" / "pytorch_model.bin"
        path.parent.mkdir()
        start = time.monotonic()
        # Built in a child process so this one stays small (its mappings would otherwise
        # sit in every later fork).
        subprocess.run(
            [sys.executable, __file__, "--_build-big", str(path), str(gigabytes)], check=True
        )
        size = path.stat().st_size
        print(
            f"\nbig checkpoint: {size / 1e9:.2f} GB torch zip written in "
            f"{time.monotonic() - start:.1f} s ({path.name})"
        )
        print(f"{'tool':<11} {'verdict':>8} {'exit':>5} {'wall s':>8} {'peak RSS MB':>12}")
        env = _env(peers)
        for tool in tools(peers):
            run = run_measured(tool.argv(path), timeout, env)
            print(
                f"{tool.name:<11} {tool.verdict(run):>8} {str(run.code):>5} "
                f"{run.wall_s:>8.2f} {run.max_rss_kb / 1024:>12.0f}"
            )
            if tool.verdict(run) != "clean":  # say why a benign checkpoint was not clean
                print("    " + " | ".join(run.out.strip().splitlines()[-2:])[:300])


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--_build-big":  # internal: child-process build
        build_big_checkpoint(Path(sys.argv[2]), float(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-venv", type=Path, default=Path("/tmp/peers-venv"))
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per tool per sample")
    parser.add_argument(
        "--big-gb",
        type=float,
        default=None,
        help="also time every tool on a torch zip checkpoint of this many GB",
    )
    parser.add_argument("--skip-corpus", action="store_true", help="only run --big-gb")
    args = parser.parse_args()
    if not (args.peers_venv / "bin" / "python").exists():
        print(
            f"peer venv {args.peers_venv} is missing; create it with:\n  "
            + PEER_INSTALL.format(venv=args.peers_venv),
            file=sys.stderr,
        )
        print("continuing with provscan only", file=sys.stderr)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in tool_versions(args.peers_venv).items()))
    if not args.skip_corpus:
        corpus_matrix(args.peers_venv, args.timeout)
    if args.big_gb:
        big_benchmark(args.peers_venv, args.big_gb, max(args.timeout, 600.0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
