"""How does a whole `provscan check` scale with the number of files, locally and on the Hub?

a. A folder of --files tiny files (ten bytes each, a thousand per sub-folder) beside the demo
   model: `provscan check DIR --json FILE -q` end to end (inventory, hashing, every file walked
   as a pickle, the policy), its wall time and peak RSS, and the same folder through the peer
   scanners installed in --peers-venv (modelscan, picklescan, modelaudit; fickling takes one
   file only), with each one's time and memory as a ratio of provscan's.
b. A Hub commit listing --hub-files tiny files, served by the local fake Hub
   (fixtures/hub_server.py, 127.0.0.1): `provscan check hf://acme/huge` (metadata-only), its
   exit code, wall time, peak RSS and the requests it made. A commit listing more files than
   limits.hub_max_files is scanned that far and says so (INV-TOO-MANY-FILES, critical); a
   listing whose JSON is over limits.hub_response_max is refused before it is parsed (exit 3).

    python benchmarks/scale.py [--files 100000] [--hub-files 1000000 50000] [--peers-venv DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.serialization import _env, run_measured  # noqa: E402
from fixtures.hub_repos import FixtureRepo  # noqa: E402
from fixtures.hub_server import HubServer  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo" / "tiny-llama"


def write_tree(root: Path, count: int) -> None:
    shutil.copytree(DEMO, root)
    for i in range(count):
        folder = root / f"part{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir()
        (folder / f"f{i:07d}.txt").write_bytes(f"{i:09d}\n".encode())


def provscan_argv(target: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "provscan", "check", target, "--json", str(out), "-q"]


def local(count: int, peers: Path, timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix="provscan-scale-") as tmp:
        root = Path(tmp) / "model"
        write_tree(root, count)
        out = Path(tmp) / "report.json"
        run = run_measured(provscan_argv(str(root), out), timeout, _env(peers))
        report = json.loads(out.read_text()) if out.exists() else {}
        verdict = (report.get("verdict") or {}).get("decision", "none")
        print(
            f"\na. {count:,} tiny files + the demo model ({len(report.get('files', [])):,} in the report)"
        )
        print(
            f"{'tool':<11} {'exit':>5} {'wall s':>8} {'peak RSS MB':>12} {'x time':>7} {'x RSS':>6}"
        )
        print(
            f"{'provscan':<11} {run.code!s:>5} {run.wall_s:>8.1f} {run.max_rss_kb / 1024:>12.0f} "
            f"{1:>7.2f} {1:>6.2f}   verdict {verdict}"
        )
        bin_ = peers / "bin"
        for name, argv in (
            ("modelscan", [str(bin_ / "modelscan"), "-p", str(root)]),
            ("picklescan", [str(bin_ / "picklescan"), "-p", str(root)]),
            ("modelaudit", [str(bin_ / "modelaudit"), "scan", str(root)]),
        ):
            if not Path(argv[0]).exists():
                print(f"{name:<11} not installed in {peers}; skipped")
                continue
            peer = run_measured(argv, timeout, _env(peers))
            print(
                f"{name:<11} {peer.code!s:>5} {peer.wall_s:>8.1f} {peer.max_rss_kb / 1024:>12.0f} "
                f"{peer.wall_s / run.wall_s:>7.2f} {peer.max_rss_kb / run.max_rss_kb:>6.2f}"
            )


def hub(counts: list[int], timeout: float) -> None:
    for count in counts:
        files = {f"part{i // 1000:04d}/f{i:07d}.txt": f"{i:09d}\n".encode() for i in range(count)}
        repo = FixtureRepo("acme/huge", files)
        with HubServer([repo]) as server, tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, **server.env(Path(tmp))}
            out = Path(tmp) / "report.json"
            run = run_measured(provscan_argv("hf://acme/huge", out), timeout, env)
            report = json.loads(out.read_text()) if out.exists() else {}
            many = [f for f in report.get("findings", []) if f["rule_id"] == "INV-TOO-MANY-FILES"]
            said = many[0]["message"] if many else run.out.strip().splitlines()[-1:] or [""]
            print(
                f"\nb. hf:// commit listing {count:,} files: exit {run.code}, "
                f"{run.wall_s:.1f} s, peak RSS {run.max_rss_kb / 1024:.0f} MB, "
                f"{len(server.requests):,} requests, {len(report.get('files', [])):,} files scanned"
            )
            print(f"   {said if isinstance(said, str) else said[0]}"[:400])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--hub-files", type=int, nargs="*", default=[1_000_000, 50_000])
    parser.add_argument("--peers-venv", type=Path, default=Path("/tmp/peers-venv"))
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    if args.files:
        local(args.files, args.peers_venv, args.timeout)
    hub(args.hub_files, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
