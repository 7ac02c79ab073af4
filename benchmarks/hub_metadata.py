"""How many bytes and requests does a metadata-only scan of a 200-shard Hub repo cost? provscan vs huggingface_hub.

Issue 6's target: reading every shard's safetensors header downloads less than 0.1% of the
repo's bytes. This serves fixtures/hub_repos.py's `many_shard_repo` (default 200 shards of 4 MiB,
about 800 MiB) from the local fake Hub (fixtures/hub_server.py, a Hub and a CDN origin on
127.0.0.1, no network), and measures in the same run:

  a. provscan, default   `fetch_safetensors_headers` over every shard: a HEAD on /resolve (stops
                         at the 302), then one GET of bytes 0..size/2048-1 on the CDN, and a second
                         GET only for a header longer than that
  b. provscan, exact     the same with `first_read=8`: GET bytes 0-7, then bytes 8..8+N-1
  c. huggingface_hub     `HfApi.get_safetensors_metadata` (the peer): file_exists HEADs, the index
                         downloaded, then per shard a GET of `bytes=0-100000` through the 302

For each: HTTP requests and body bytes as the server logged them, the share of the repo's bytes,
and wall time (median of --repeat rounds; the peer's cache is emptied before each round so each
round downloads the index again). Then the peer's figures over provscan's default ones. On
127.0.0.1 a request costs well under a millisecond, so wall times mostly show the servers' and
clients' CPU: on the real Hub every request is a round trip (tens of ms), which (a) saves over (b).

    python benchmarks/hub_metadata.py [--shards 200] [--shard-mib 4] [--workers 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `fixtures` and `provscan` importable

from fixtures.hub_repos import MiB, many_shard_repo  # noqa: E402
from fixtures.hub_server import HubServer  # noqa: E402


@dataclass(frozen=True)
class Figures:
    requests: int
    bytes: int
    wall_s: float
    ok: bool


def measure(
    hub: HubServer, repeat: int, run: Callable[[], bool], before: Callable[[], None]
) -> Figures:
    """Run `repeat` times; the server's counts come from the first round, the time is the median."""
    times, counts, ok = [], (0, 0), True
    for i in range(repeat):
        before()
        hub.reset_log()
        start = time.perf_counter()
        ok = run() and ok
        times.append(time.perf_counter() - start)
        if i == 0:
            counts = (len(hub.requests), hub.bytes_sent)
    return Figures(*counts, statistics.median(times), ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=200)
    parser.add_argument("--shard-mib", type=int, default=4, help="MiB per shard (multiple of 1/64)")
    parser.add_argument("--workers", type=int, default=8, help="provscan's parallel files")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="provscan-hub-bench-"))
    # huggingface_hub reads these when it is imported: no saved token, no telemetry, our cache.
    os.environ |= {"HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_TOKEN": ""}
    os.environ |= {"HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    os.environ |= {"HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"}
    from huggingface_hub import HfApi, __version__

    from provscan.hub.ranges import RemoteHeader, fetch_safetensors_headers
    from provscan.limits import DEFAULT_LIMITS

    built = time.perf_counter()
    repo = many_shard_repo(shards=args.shards, shard_bytes=args.shard_mib * MiB)
    shards = [p for p in repo.files if p.endswith(".safetensors")]
    total = sum(e.size for e in repo.entries.values())
    print(f"repo {repo.repo_id}: {len(shards)} shards, {total:,} bytes in all "
          f"(built in {time.perf_counter() - built:.1f} s); huggingface_hub {__version__}, "
          f"{args.workers} provscan workers, median of {args.repeat} rounds")  # fmt: skip

    def provscan(first_read: int | None) -> Callable[[], bool]:
        def run() -> bool:
            results = fetch_safetensors_headers(
                repo.repo_id, repo.sha, shards, max_header=DEFAULT_LIMITS.safetensors_header_max,
                workers=args.workers, token=False, endpoint=hub.endpoint, first_read=first_read,
            )  # fmt: skip
            return all(isinstance(r, RemoteHeader) for r in results.values())

        return run

    def peer() -> bool:
        meta = HfApi(endpoint=hub.endpoint, token=False).get_safetensors_metadata(
            repo.repo_id, revision=repo.sha
        )
        return len(meta.files_metadata) == len(shards)

    def empty_cache() -> None:
        shutil.rmtree(home / "hub", ignore_errors=True)

    try:
        with HubServer([repo]) as hub:
            rows = {
                "provscan, default": measure(hub, args.repeat, provscan(None), empty_cache),
                "provscan, exact (first_read=8)": measure(
                    hub, args.repeat, provscan(8), empty_cache
                ),
                "huggingface_hub get_safetensors_metadata": measure(
                    hub, args.repeat, peer, empty_cache
                ),
            }
    finally:
        shutil.rmtree(home, ignore_errors=True)

    print(f"\n{'':42} {'requests':>9} {'per shard':>9} {'bytes':>12} {'of repo':>9} {'wall s':>7}")
    for name, f in rows.items():
        flag = "" if f.ok else "  (FAILED: not every header read)"
        print(f"{name:42} {f.requests:9,} {f.requests / len(shards):9.2f} {f.bytes:12,} "
              f"{f.bytes / total:9.4%} {f.wall_s:7.2f}{flag}")  # fmt: skip
    ours, theirs = rows["provscan, default"], rows["huggingface_hub get_safetensors_metadata"]
    print(f"\npeer / provscan default: bytes x{theirs.bytes / ours.bytes:.1f}, requests "
          f"x{theirs.requests / ours.requests:.2f}, wall time x{theirs.wall_s / ours.wall_s:.2f}")  # fmt: skip
    target = ours.bytes < total / 1000
    print(f"target (< 0.1% of the repo's bytes): {'met' if target else 'MISSED'} by provscan")
    return 0 if target and all(f.ok for f in rows.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
