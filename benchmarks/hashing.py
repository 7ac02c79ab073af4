"""How fast does provscan hash a multi-GB model, next to sha256sum and model_signing?

Generates a deterministic multi-file model (safetensors-shaped files of pseudo-random
bytes plus small JSON files), reads it once so that every contender runs from the page
cache alike, then times each contender --repeat times and prints the medians, GB/s and
ratios, and checks that provscan's OMS root digest equals model_signing's.

    python benchmarks/hashing.py [--size-gb 3.2] [--repeat 3] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _synthetic import BLOCK, write_small_files, write_weight_file  # noqa: E402  (benchmarks/)

from provscan.collectors.hashing import hash_files, is_ignored  # noqa: E402
from provscan.files import ScanFile  # noqa: E402
from provscan.limits import DEFAULT_LIMITS, MiB  # noqa: E402

WEIGHT_FILES = 6
STAMP = "provscan-bench.json"


def _params(total_bytes: int) -> dict[str, int]:
    return {"total_bytes": total_bytes, "files": WEIGHT_FILES, "version": 1}


def _already_generated(model: Path, total_bytes: int) -> bool:
    stamp = model / STAMP
    return stamp.exists() and json.loads(stamp.read_text()) == _params(total_bytes)


def generate(model: Path, total_bytes: int) -> list[Path]:
    """Write the model deterministically (same bytes for the same size) and fast."""
    if _already_generated(model, total_bytes):
        return sorted(model.iterdir())
    shutil.rmtree(model, ignore_errors=True)
    model.mkdir(parents=True)
    # One 64 MiB block of seeded pseudo-random bytes, reused with a counter stamped
    # into each copy so that no two blocks are equal.
    block = bytearray(random.Random(20240601).randbytes(BLOCK))  # noqa: S311
    per_file = total_bytes // WEIGHT_FILES
    counter = 0
    for index in range(1, WEIGHT_FILES + 1):
        path = model / f"model-{index:05d}-of-{WEIGHT_FILES:05d}.safetensors"
        counter = write_weight_file(path, per_file, block, counter)
    write_small_files(model)
    (model / "tokenizer_config.json").write_text('{"model_max_length": 4096}\n')
    # The stamp is a file of the model too: every contender hashes it.
    (model / STAMP).write_text(json.dumps(_params(total_bytes)))
    return sorted(model.iterdir())


def warm_up(files: list[Path]) -> None:
    buffer = bytearray(8 * MiB)
    for path in files:
        with path.open("rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass


def evict(files: list[Path]) -> None:
    """Drop these files' clean pages from the page cache (only theirs, nothing else)."""
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages (a freshly generated model) cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed_round_robin(
    repeat: int, contenders: list[tuple[str, Callable[[], str]]], before_each: Callable[[], None]
) -> dict[str, tuple[list[float], str]]:
    """Run every contender once per round, so that load from other processes on the
    machine falls on all of them alike rather than on whichever ran during it."""
    results: dict[str, tuple[list[float], str]] = {label: ([], "") for label, _ in contenders}
    for _ in range(repeat):
        for label, run in contenders:
            before_each()
            start = time.perf_counter()
            digest = run()
            results[label][0].append(time.perf_counter() - start)
            results[label] = (results[label][0], digest)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=3.2, help="model size in GB (1e9 bytes)")
    parser.add_argument("--dir", type=Path, help="where to write the model (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the generated model")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--buffer-mib", type=float, default=DEFAULT_LIMITS.hash_buffer / MiB)
    parser.add_argument(
        "--cold", action="store_true", help="evict the files from the page cache before each run"
    )
    args = parser.parse_args()

    total = int(args.size_gb * 1e9)
    parent = args.dir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    reuse = args.dir is not None and _already_generated(parent / "bench-model", total)
    if free < total + 512 * MiB and not reuse:
        print(f"refusing: {parent} has {free / 1e9:.1f} GB free, need {total / 1e9 + 0.5:.1f} GB")
        return 2
    created = Path(tempfile.mkdtemp(prefix="provscan-bench-", dir=parent)) if not args.dir else None
    model = (created or parent) / "bench-model"
    try:
        return run_all(model, total, args)
    finally:
        if not args.keep:
            shutil.rmtree(created or model, ignore_errors=True)
        else:
            print(f"kept {model}")


def run_all(model: Path, total: int, args: argparse.Namespace) -> int:
    import model_signing
    from model_signing import hashing as ms_hashing
    from model_signing._signing.signing import Payload

    start = time.perf_counter()
    paths = generate(model, total)
    size = sum(p.stat().st_size for p in paths)
    print(
        f"model: {model} ({len(paths)} files, {size / 1e9:.2f} GB) "
        f"generated in {time.perf_counter() - start:.1f} s"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
        f"model_signing {model_signing.__version__}"
    )
    if args.cold:
        print("page cache: these files evicted (POSIX_FADV_DONTNEED) before every timed run")
    else:
        warm_up(paths)
        print("page cache: all files read once before timing, so every contender hashes from it")
    print(f"{args.repeat} rounds, each contender once per round; ratios use medians")

    scan = [
        ScanFile(rel=p.name, path=p, size=p.stat().st_size, in_manifest=not is_ignored(p.name))
        for p in paths
    ]
    buffer = int(args.buffer_mib * MiB)

    def sha256sum() -> str:
        out = subprocess.run(["sha256sum", *map(str, paths)], check=True, capture_output=True)
        return hashlib.sha256(out.stdout).hexdigest()

    def reference(method: str) -> Callable[[], str]:
        def run() -> str:
            config = ms_hashing.Config()
            if method == "shards":
                config.use_shard_serialization()
            manifest = config.hash(model)
            statement = Payload(manifest).statement.pb
            return str(statement.subject[0].digest["sha256"])

        return run

    def provscan(method: str) -> Callable[[], str]:
        def run() -> str:
            result = hash_files(
                scan, model_name=model.name, workers=args.workers, buffer_size=buffer, method=method
            )
            assert result.value.complete
            return result.value.manifest.root_digest

        return run

    contenders = [
        ("sha256sum (coreutils, 1 process)", sha256sum),
        ("model_signing files (default config)", reference("files")),
        (
            f"provscan files ({args.workers} workers, {args.buffer_mib:g} MiB buffer)",
            provscan("files"),
        ),
        ("model_signing shards (1 GB shards)", reference("shards")),
        (f"provscan shards ({args.workers} workers, 1 GB shards)", provscan("shards")),
    ]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    timings = timed_round_robin(
        args.repeat, contenders, (lambda: evict(paths)) if args.cold else (lambda: None)
    )
    print(f"  {'':<52} {'median':>8} {'GB/s':>6} {'best':>8} {'GB/s':>6}")
    results: dict[str, tuple[float, str]] = {}
    for label, (times, digest) in timings.items():
        median, best = statistics.median(times), min(times)
        results[label] = (median, digest)
        print(
            f"  {label:<52} {median:7.3f}s {size / median / 1e9:6.2f} "
            f"{best:7.3f}s {size / best / 1e9:6.2f}"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    sha, ms_files, ps_files, ms_shards, ps_shards = results.values()
    print(
        f"provscan files / model_signing files : time ratio {ps_files[0] / ms_files[0]:.2f} "
        f"({ms_files[0] / ps_files[0]:.2f}x the speed)"
    )
    print(
        f"provscan shards / model_signing shards: time ratio {ps_shards[0] / ms_shards[0]:.2f} "
        f"({ms_shards[0] / ps_shards[0]:.2f}x the speed)"
    )
    print(
        f"provscan files / sha256sum           : time ratio {ps_files[0] / sha[0]:.2f} "
        f"({sha[0] / ps_files[0]:.2f}x the speed)"
    )
    same_files, same_shards = ps_files[1] == ms_files[1], ps_shards[1] == ms_shards[1]
    print(f"root digest files  provscan == model_signing: {same_files} ({ps_files[1]})")
    print(f"root digest shards provscan == model_signing: {same_shards} ({ps_shards[1]})")
    return 0 if same_files and same_shards else 1


if __name__ == "__main__":
    sys.exit(main())
