"""Does verifying a signed model cost provscan a second read? Signed vs unsigned scans, and model_signing.

provscan reads a model's OpenSSF model signature (model.sig) before hashing, hashes with the
signer's serialization and verifies by comparing that one manifest, so a signed scan should
read and hash the model once, like an unsigned one. This measures it, next to the peer
tool, model_signing's own `verify`, in the same run:

  a. provscan scan, unsigned      `scan(model)` with no model.sig in the model
  b. provscan scan, signed        `scan(model, ScanOptions(trust=load_trust([pub])))` with
                                  model.sig in place; checked: verified, integrity "match"
  c. model_signing verify         `verifying.Config().use_elliptic_key_verifier(...).verify`
  d. provscan scan + ms verify    what a user without provscan's integration runs: (a) then
                                  (c), one after the other, timed as one sequence

For each: wall time (median of --repeat rounds, every mode once per round), and three byte
counts over the model's bytes (every file but model.sig):
  hashed   the bytes provscan's hashing reported (ScanOptions on_hash_progress); only for
           the provscan-only modes (a, b);
  rchar    /proc/self/io rchar: bytes this process got from read syscalls, page cache or
           not (model_signing included, it runs in-process);
  storage  /proc/self/io read_bytes: bytes this process made the kernel fetch from storage;
           0 when the page cache served everything (warm), about 1.00 per cold read.

Two blocks, one per OMS serialization the signer may use:
  files   one SHA-256 per file. A signed scan should show hashed = rchar = 1.00.
  shards  one SHA-256 per --shard-size range (model_signing's default 1 GB). provscan also
          needs each file's whole-file SHA-256 (its inventory and the Hub comparisons use
          it) and SHA-256 cannot combine shard digests into a file digest, so a file of more
          than one shard is read twice: once whole, once as shards (hashing.py `_plan`). The
          two reads run in parallel, so the second is mostly served from the page cache
          (storage stays near 1.00 even cold), but hashed and rchar show it: up to 2.00 when
          every byte is in a multi-shard file. A file of one shard is read once. The
          expected figure, from provscan's own planner, is printed next to the measured one.
          The unsigned scan (a) of this block hashes as provscan does without a signature:
          files serialization.

The byte ratios are the stable figures; wall times from storage (cold) vary far more from
run to run than warm ones, on a virtual disk especially: read the best column too, and
raise --repeat.

Page cache: with --cache cold (or both, the default) the caches are dropped (sync; echo 3 >
/proc/sys/vm/drop_caches, needs root) right before every timed run, after a --settle
pause. The pause is for VMs whose balloon hands freed memory back to the host (virtio_balloon
free page reporting, about 2 s after it is freed): there a cold read runs at full speed when
it refills pages just freed, and at about half speed when it races the reporting of the
last run's gigabytes or refills pages already handed back (the host faults them in again),
whichever mode it is; the pause then the drop give every run the same, fast, case as long
as it takes under ~2 s. In (d) the caches are dropped only before the sequence, so model_signing's read after provscan's is page-cache served, as it would be
for a user on a machine with enough memory. If the caches cannot be dropped this says so
and measures warm only. Warm: the model is read once before the block.

The model: weight files in safetensors layout (a real header, random data) plus small JSON
files, split like `save_pretrained` does by default (at most --file-gb, default 5 GB, per
weight file; --files overrides), signed with a fresh EC P-256 key via model_signing's API.

    python benchmarks/signing.py [--size-gb 2] [--repeat 3] [--cache both|warm|cold] [--settle S]
        [--shard-size 1e9] [--file-gb 5 | --files N] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _synthetic import BLOCK, write_small_files, write_weight_file  # noqa: E402  (benchmarks/)

from provscan import __version__ as provscan_version  # noqa: E402
from provscan.collectors.hashing import planned_read_bytes, shard_ranges  # noqa: E402
from provscan.files import ScanFile  # noqa: E402
from provscan.limits import MiB  # noqa: E402
from provscan.pipeline import ScanOptions, available_cpus, scan  # noqa: E402
from provscan.report import StepStatus  # noqa: E402
from provscan.signing.trust import TrustSettings, load_trust  # noqa: E402

SIG = "model.sig"
MODES = (
    ("unsigned", "provscan scan, unsigned"),
    ("signed", "provscan scan, signed + verified"),
    ("verify", "model_signing verify"),
    ("both", "provscan scan + model_signing verify"),
)


# --- the model ------------------------------------------------------------------------


def generate(model: Path, total: int, files: int) -> None:
    """`files` safetensors-shaped weight files of random bytes summing to ~`total`, plus JSON."""
    model.mkdir(parents=True)
    # One 64 MiB block of random bytes, reused with a counter stamped into each copy so
    # that no two blocks are equal (os.urandom runs at ~0.3 GB/s here; this at disk speed).
    block = bytearray(os.urandom(BLOCK))
    counter = 0
    for index in range(1, files + 1):
        name = (
            "model.safetensors" if files == 1 else f"model-{index:05d}-of-{files:05d}.safetensors"
        )
        data_len = total // files
        counter = write_weight_file(model / name, data_len, block, counter)
    write_small_files(model)


def make_keys(work: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = work / "signer.key", work / "signer.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def sign(model: Path, private: Path, out: Path, method: str, shard_size: int) -> float:
    """Sign as `model-signing sign key` does (model.sig ignored), then move the sig to `out`."""
    from model_signing import hashing, signing

    config = hashing.Config().set_ignored_paths(paths=[SIG], ignore_git_paths=True)
    if method == "shards":
        config.use_shard_serialization(shard_size=shard_size)
    start = time.perf_counter()
    signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(config).sign(
        model, model / SIG
    )
    elapsed = time.perf_counter() - start
    shutil.move(model / SIG, out)
    return elapsed


# --- measuring ------------------------------------------------------------------------


def proc_io() -> dict[str, int]:
    with open("/proc/self/io") as handle:
        return {key: int(value) for key, value in (line.split(": ") for line in handle)}


def drop_caches() -> str | None:
    """Drop the page cache; None when it worked, else why not."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def warm_up(model: Path) -> None:
    buffer = bytearray(8 * MiB)
    for path in sorted(model.iterdir()):
        with path.open("rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass


@dataclass
class Sample:
    seconds: float
    hashed: int | None  # provscan's hashed bytes (None when model_signing took part)
    rchar: int
    storage: int


class HashCounter:
    """ScanOptions callbacks: the planned total, and the sum of progress calls (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.planned = 0
        self.hashed = 0

    def start(self, total: int) -> None:
        self.planned = total

    def progress(self, count: int) -> None:
        with self.lock:
            self.hashed += count


def provscan_scan(model: Path, trust: TrustSettings, expect: str | None) -> int:
    """Scan; check the hashing completed and the signature (if `expect`) verified and matched."""
    counter = HashCounter()
    report = scan(
        str(model),
        ScanOptions(trust=trust, on_hash_start=counter.start, on_hash_progress=counter.progress),
    )
    hashing = next(step for step in report.steps if step.name == "hashing")
    if hashing.status is not StepStatus.COMPLETED or counter.hashed != counter.planned:
        raise RuntimeError(f"hashing {hashing.status.value}: {counter.hashed}/{counter.planned}")
    checks = report.signatures.signatures if report.signatures else ()
    if expect is None:
        if checks:
            raise RuntimeError(f"unsigned scan found signatures: {checks}")
    else:
        if len(checks) != 1:
            raise RuntimeError(f"expected one signature, found {len(checks)}")
        check = checks[0]
        got = (
            check.status.value,
            check.integrity,
            check.serialization and check.serialization.method,
        )
        if got != ("verified", "match", expect):
            raise RuntimeError(f"signature check {got}, expected verified/match/{expect}: {check}")
    return counter.hashed


def model_signing_verify(model: Path, sig: Path, public: Path, given: str | None = None) -> None:
    """model_signing's verify; with `given` ("files" or "shards:SIZE") the signer's hashing
    config is given explicitly, as model_signing's CLI does, instead of guessed from the
    signature (see `guess_fails`)."""
    from model_signing import hashing, verifying

    config = verifying.Config().use_elliptic_key_verifier(public_key=public)
    if given is not None:
        hashing_config = hashing.Config().set_ignored_paths(paths=[SIG], ignore_git_paths=True)
        if given.startswith("shards:"):
            hashing_config.use_shard_serialization(shard_size=int(given.split(":")[1]))
        config.set_hashing_config(hashing_config)
    config.verify(model, sig)


def guess_fails(model: Path, sig: Path, public: Path) -> str | None:
    """Why model_signing cannot verify with the config it guesses from `sig`, or None.

    model_signing 1.1.1 fails so on a shards signature, before reading any file
    (`TypeError: 'float' object cannot be interpreted as an integer`): its protobuf
    Struct hands `shard_size` back as a float. Checked, untimed, rather than assumed.
    """
    try:
        model_signing_verify(model, sig, public)
    except Exception as exc:  # noqa: BLE001 - reported, and the config is then given
        return f"{type(exc).__name__}: {exc}"
    return None


def measure(run: Callable[[], int | None]) -> Sample:
    before = proc_io()
    start = time.perf_counter()
    hashed = run()
    seconds = time.perf_counter() - start
    after = proc_io()
    return Sample(
        seconds,
        hashed,
        after["rchar"] - before["rchar"],
        after["read_bytes"] - before["read_bytes"],
    )


# --- the blocks -----------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    model: Path
    size: int  # the model's bytes: every file but model.sig
    public: Path
    trust: TrustSettings


def run_block(
    setup: Setup, method: str, given: str | None, sig: Path, settle: float | None, repeat: int
) -> dict[str, list[Sample]]:
    model, placed = setup.model, setup.model / SIG

    def place(present: bool) -> None:
        if present:
            shutil.copyfile(sig, placed)
        else:
            placed.unlink(missing_ok=True)

    def unsigned() -> int:
        return provscan_scan(model, setup.trust, None)

    def signed() -> int:
        return provscan_scan(model, setup.trust, method)

    def verify() -> None:
        model_signing_verify(model, placed, setup.public, given)

    def both() -> None:
        provscan_scan(model, setup.trust, None)  # model.sig kept out: provscan does not see it
        model_signing_verify(model, sig, setup.public, given)

    runs: dict[str, tuple[bool, Callable[[], int | None]]] = {
        "unsigned": (False, unsigned),
        "signed": (True, signed),
        "verify": (True, verify),
        "both": (False, both),
    }
    samples: dict[str, list[Sample]] = {mode: [] for mode in runs}
    if settle is None:  # warm
        warm_up(model)
    for _ in range(repeat):  # every mode once per round: background load falls on all alike
        for mode, (sig_present, run) in runs.items():
            place(sig_present)
            if settle is not None:  # cold: let the last run's freed memory settle, then drop
                time.sleep(settle)
                drop_caches()
            samples[mode].append(measure(run))
    place(False)
    return samples


def report_block(
    setup: Setup, method: str, shard_size: int, cache: str, samples: dict[str, list[Sample]]
) -> None:
    size = setup.size
    print(f"\n{method} serialization, {cache} page cache (median of {len(samples['signed'])}):")
    print(
        f"  {'mode':<38} {'wall s':>7} {'GB/s':>6} {'best s':>7} {'hashed':>7} {'rchar':>7} "
        f"{'storage':>8}   (wall: median; bytes / model bytes)"
    )
    medians: dict[str, float] = {}
    for mode, label in MODES:
        runs = samples[mode]
        seconds = statistics.median(s.seconds for s in runs)
        medians[mode] = seconds
        hashed = [s.hashed for s in runs if s.hashed is not None]
        hashed_text = f"{statistics.median(hashed) / size:7.3f}" if hashed else f"{'-':>7}"
        rchar = statistics.median(s.rchar for s in runs) / size
        storage = statistics.median(s.storage for s in runs) / size
        print(
            f"  {label:<38} {seconds:7.3f} {size / seconds / 1e9:6.2f} "
            f"{min(s.seconds for s in runs):7.3f} {hashed_text} "
            f"{rchar:7.3f} {storage:8.3f}"
        )
    unsigned, signed = medians["unsigned"], medians["signed"]
    verify, both = medians["verify"], medians["both"]
    print(f"  signed scan / unsigned scan                       : {signed / unsigned:.2f}")
    print(
        f"  signed scan / (unsigned scan + ms verify), measured: {signed / both:.2f}"
        f"  (sum of medians a+c: {signed / (unsigned + verify):.2f})"
    )
    print(f"  signed scan / model_signing verify alone          : {signed / verify:.2f}")
    if method == "shards":
        files = [p for p in sorted(setup.model.iterdir()) if p.name != SIG]
        multi = [p.name for p in files if len(shard_ranges(p.stat().st_size, shard_size)) > 1]
        print(
            f"  files of more than one {shard_size / 1e9:g} GB shard (read whole + as shards): "
            f"{len(multi)} of {len(files)}{' (' + ', '.join(multi) + ')' if multi else ''}"
        )


def expected_shards_ratio(model: Path, size: int, shard_size: int) -> float:
    files = [
        ScanFile(rel=p.name, path=p, size=p.stat().st_size, in_manifest=True)
        for p in sorted(model.iterdir())
        if p.name != SIG
    ]
    return planned_read_bytes(files, method="shards", shard_size=shard_size) / size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0, help="model size in GB (1e9 bytes)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", choices=("both", "warm", "cold"), default="both")
    parser.add_argument(
        "--settle",
        type=float,
        help="cold: seconds to pause before dropping the caches (default: 1.5 per GB, at most 3)",
    )
    parser.add_argument(
        "--shard-size", type=float, default=1e9, help="bytes per shard (shards block)"
    )
    parser.add_argument("--file-gb", type=float, default=5.0, help="max GB per weight file")
    parser.add_argument("--files", type=int, help="number of weight files (overrides --file-gb)")
    parser.add_argument("--dir", type=Path, help="parent of the work directory (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    total = int(args.size_gb * 1e9)
    parent = args.dir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if total > free / 2:
        print(
            f"refusing: {parent} has {free / 1e9:.1f} GB free; a {total / 1e9:.1f} GB model "
            "would leave less than half of it"
        )
        return 2
    work = Path(tempfile.mkdtemp(prefix="provscan-sign-bench-", dir=parent))
    try:
        return run_all(work, total, args)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_all(work: Path, total: int, args: argparse.Namespace) -> int:
    import model_signing

    files = args.files or max(1, math.ceil(total / (args.file_gb * 1e9)))
    shard_size = int(args.shard_size)
    model = work / "bench-model"
    start = time.perf_counter()
    generate(model, total, files)
    size = sum(p.stat().st_size for p in model.iterdir())
    print(
        f"model: {model} ({files} weight file(s) + 2 JSON, {size / 1e9:.3f} GB) "
        f"generated in {time.perf_counter() - start:.1f} s"
    )
    cpu = "?"
    with open("/proc/cpuinfo") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if "model name" in line), cpu)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print(
        f"machine: {available_cpus()} cores (sched_getaffinity), {cpu}, {ram / 2**30:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
        f"model_signing {model_signing.__version__}, provscan {provscan_version}"
    )
    private, public = make_keys(work)
    setup = Setup(model, size, public, load_trust([public]))
    sigs = {}
    for method in ("files", "shards"):
        sigs[method] = work / f"{method}.sig"
        took = sign(model, private, sigs[method], method, shard_size)
        print(
            f"signed ({method}{', ' + f'{shard_size / 1e9:g} GB shards' if method == 'shards' else ''}) "
            f"with a fresh EC P-256 key in {took:.1f} s"
        )

    caches = ["warm", "cold"] if args.cache == "both" else [args.cache]
    settle = args.settle if args.settle is not None else min(3.0, 1.5 * args.size_gb)
    if "cold" in caches:
        why = drop_caches()
        if why is None:
            print(
                f"cold: a {settle:g} s pause, then the caches dropped (sync; echo 3 > "
                "/proc/sys/vm/drop_caches), before every run"
            )
        else:
            print(f"cold: cannot drop the page cache ({why}); measuring warm only")
            caches = ["warm"]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for method in ("files", "shards"):
        if method == "shards":
            expected = expected_shards_ratio(model, size, shard_size)
            print(f"\nshards: provscan's planner expects hashed / model = {expected:.3f}")
        given = None
        why = guess_fails(model, sigs[method], public)
        if why is not None:
            given = "files" if method == "files" else f"shards:{shard_size}"
            print(
                f"{method}: model_signing cannot verify with the hashing config it guesses from "
                f"the signature ({why}); it is given the signer's config explicitly"
            )
        for cache in caches:
            cold = settle if cache == "cold" else None
            samples = run_block(setup, method, given, sigs[method], cold, args.repeat)
            report_block(setup, method, shard_size, cache, samples)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
