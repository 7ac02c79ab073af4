"""What does `provscan check hf://acme/many-shards` cost, end to end? Metadata-only vs downloads.

Issue 6's target: a metadata-only scan of a Hub repo downloads less than 0.1% of the repo's bytes.
Where benchmarks/hub_metadata.py times only the header reads, this runs the whole CLI: model_info,
the file listing, the small files read whole, every shard's safetensors header read by range, the
scan and the report. It serves fixtures/hub_repos.py's `many_shard_repo` (default 200 shards of
4 MiB, about 800 MiB) from the local fake Hub (fixtures/hub_server.py, 127.0.0.1, no network) and
runs, each as a child process with a FRESH empty HF cache per round, in the same run:

  a. provscan, metadata   `provscan check hf://acme/many-shards -q --format json` (the default)
  b. provscan, download   the same with `--download`: snapshot_download, then a full local scan
  c. snapshot_download    huggingface_hub's `snapshot_download` alone, no scanning: what any
                          full-download scanner (modelscan, picklescan, ...) must do first
  d. get_safetensors_     huggingface_hub's own header reader, `HfApi().get_safetensors_metadata`
     metadata

For each: HTTP requests and body bytes as the server logged them (both servers, the Hub and its
CDN), their share of the repo's total size, and wall time (median of --repeat rounds; requests and
bytes are medians too, flagged if they varied). Wall time includes the child's start and imports
(about the same for all four). provscan makes its Hub requests with `provscan.resolve.hub_metadata.WORKERS`
parallel workers; snapshot_download uses its default 8. On 127.0.0.1 a request costs well under
a millisecond: on the real Hub each is a round trip and each byte crosses the network.

    python benchmarks/hub_scan.py [--shards 200] [--shard-mib 4] [--repeat 3] [--skip-download]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `fixtures` and `provscan` importable

from fixtures.hub_repos import MiB, many_shard_repo  # noqa: E402
from fixtures.hub_server import HubServer  # noqa: E402
from provscan.resolve.hub_metadata import WORKERS  # noqa: E402

SNAPSHOT = """
import sys; from pathlib import Path; from huggingface_hub import snapshot_download
root = Path(snapshot_download(sys.argv[1]))
print(sum(1 for p in root.rglob("*") if p.is_file()))
"""
METADATA = """
import sys; from huggingface_hub import HfApi
print(len(HfApi().get_safetensors_metadata(sys.argv[1]).files_metadata))
"""


@dataclass(frozen=True)
class Figures:
    requests: int
    bytes: int
    wall_s: float
    varied: bool  # requests or bytes differed between rounds
    stdout: str  # the first round's


class Failed(Exception):
    pass


def measure(hub: HubServer, repeat: int, argv: list[str], ok: tuple[int, ...]) -> Figures:
    """Run `argv` `repeat` times, each with a fresh empty HF cache; medians of the server's counts."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    times: list[float] = []
    counts: list[tuple[int, int]] = []
    stdout = ""
    for _ in range(repeat):
        home = Path(tempfile.mkdtemp(prefix="provscan-hub-scan-"))
        env = clean | hub.env(home) | {"HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        try:
            hub.reset_log()
            start = time.perf_counter()
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
            times.append(time.perf_counter() - start)
            counts.append((len(hub.requests), hub.bytes_sent))
        finally:
            shutil.rmtree(home, ignore_errors=True)
        if done.returncode not in ok:
            raise Failed(f"{' '.join(argv[1:])}: exit {done.returncode}\n{done.stderr}")
        stdout = stdout or done.stdout
    requests = int(statistics.median(c[0] for c in counts))
    sent = int(statistics.median(c[1] for c in counts))
    return Figures(requests, sent, statistics.median(times), len(set(counts)) > 1, stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--shard-mib", type=int, default=4, help="MiB per shard")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-download", action="store_true", help="skip b and c (quick runs)")
    args = parser.parse_args()
    from huggingface_hub import __version__

    from provscan import __version__ as provscan_version

    built = time.perf_counter()
    repo = many_shard_repo(shards=args.shards, shard_bytes=args.shard_mib * MiB)
    shards = [p for p in repo.files if p.endswith(".safetensors")]
    total = sum(e.size for e in repo.entries.values())
    print(f"repo {repo.repo_id}: {len(repo.entries)} files ({len(shards)} shards), {total:,} bytes "
          f"in all (built in {time.perf_counter() - built:.1f} s)")  # fmt: skip
    print(f"provscan {provscan_version}, huggingface_hub {__version__}, python "
          f"{sys.version.split()[0]}, {len(os.sched_getaffinity(0))} CPUs; provscan requests in "
          f"parallel with {WORKERS} workers (provscan.resolve.hub_metadata.WORKERS); median of "
          f"{args.repeat} rounds, each with a fresh empty HF cache")  # fmt: skip

    target = f"hf://{repo.repo_id}"
    cli = [sys.executable, "-m", "provscan", "check", target, "-q", "--format", "json"]
    runs: dict[str, tuple[list[str], tuple[int, ...]]] = {
        "a. provscan check (metadata only)": (cli, (0, 4)),
        "b. provscan check --download": (cli + ["--download"], (0, 4)),
        "c. snapshot_download (no scan)": ([sys.executable, "-c", SNAPSHOT, repo.repo_id], (0,)),
        "d. get_safetensors_metadata": ([sys.executable, "-c", METADATA, repo.repo_id], (0,)),
    }
    if args.skip_download:
        runs = {k: v for k, v in runs.items() if k[0] not in "bc"}
    rows: dict[str, Figures] = {}
    try:
        with HubServer([repo]) as hub:
            for name, (argv, ok) in runs.items():
                rows[name] = measure(hub, args.repeat, argv, ok)
    except Failed as error:
        print(f"\nFAILED: {error}", file=sys.stderr)
        return 1

    print(f"\n{'':36} {'requests':>9} {'bytes':>13} {'of repo':>9} {'wall s':>7}")
    for name, f in rows.items():
        note = "  (requests/bytes varied between rounds)" if f.varied else ""
        print(f"{name:36} {f.requests:9,} {f.bytes:13,} {f.bytes / total:9.4%} "
              f"{f.wall_s:7.2f}{note}")  # fmt: skip

    a = rows["a. provscan check (metadata only)"]
    report: dict[str, Any] = json.loads(a.stdout)
    hub_info: dict[str, Any] = report["target"]["hub"]
    print(f"\n(a)'s report, target.hub: mode={hub_info.get('mode')}")
    for key in ("files", "bytes", "files_fetched", "bytes_fetched", "files_ranged",
                "bytes_ranged", "range_requests"):  # fmt: skip
        print(f"  {key:15} {hub_info.get(key, 0):>13,}")
    print(f"  findings: {len(report.get('findings', []))}")
    checks = {
        "c. snapshot_download (no scan)": (len(repo.entries), "files downloaded"),
        "d. get_safetensors_metadata": (len(shards), "shard headers read"),
    }
    for name, (want, what) in checks.items():
        if name in rows and int(rows[name].stdout.strip() or 0) != want:
            print(f"WARNING {name}: {rows[name].stdout.strip()} {what}, expected {want}")

    print("\nratios (x = other / (a)):")
    for name, timed in (("b. provscan check --download", True),
                        ("c. snapshot_download (no scan)", True),
                        ("d. get_safetensors_metadata", False)):  # fmt: skip
        if (other := rows.get(name)) is None:
            continue
        line = f"  ({name[0]})/(a): bytes x{other.bytes / a.bytes:,.1f}"
        line += f", requests x{other.requests / a.requests:.2f}"
        print(line + (f", wall time x{other.wall_s / a.wall_s:.2f}" if timed else ""))

    passed = a.bytes < total / 1000
    print(f"\n{'PASS' if passed else 'FAIL'}: metadata-only downloads < 0.1% of the repo's bytes "
          f"({a.bytes:,} of {total:,} bytes = {a.bytes / total:.4%}, server-side)")  # fmt: skip
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
