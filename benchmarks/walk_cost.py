"""What does reading every file as its loaders would cost, next to hashing the same files?

Writes real checkpoints with the real libraries (torch.save zip and legacy formats, joblib.dump
of arrays, pickle.dumps of a numpy array, safetensors), reads them once so both contenders run
from the page cache, then times provscan's serialization scan (every pickle walked by both
CPython unpickler rules, every other file walked from byte 0) against provscan's own hashing
(SHA-256 of every byte) and prints the ratio.

    python benchmarks/walk_cost.py [--mb 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

from provscan.collectors.hashing import hash_files  # noqa: E402
from provscan.collectors.inventory import collect_inventory  # noqa: E402
from provscan.collectors.serialization.scan import scan_serialization  # noqa: E402
from provscan.files import ScanFile  # noqa: E402
from provscan.limits import DEFAULT_LIMITS  # noqa: E402


def write_models(root: Path, megabytes: int) -> None:
    rows = megabytes * 2**20 // (4 * 1024)
    weights = np.random.default_rng(0).standard_normal((rows, 1024), dtype=np.float32)
    state = {"layer.weight": torch.from_numpy(weights), "layer.bias": torch.zeros(1024)}
    torch.save(state, root / "zip_format.bin")
    torch.save(state, root / "legacy_format.bin", _use_new_zipfile_serialization=False)
    joblib.dump({"w": weights, "b": weights[:10]}, root / "arrays.joblib")
    (root / "numpy_array.pkl").write_bytes(pickle.dumps(weights, protocol=5))
    save_file({"w": weights}, str(root / "model.safetensors"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of each checkpoint")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="provscan-walk-") as tmp:
        root = Path(tmp)
        write_models(root, args.mb)
        files = [ScanFile(rel=p.name, path=p, size=p.stat().st_size) for p in root.iterdir()]
        sniffed = collect_inventory(files, DEFAULT_LIMITS).value
        total = sum(f.size for f in files)
        for f in files:  # into the page cache
            f.path.read_bytes()
        hashing, walking = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            hash_files(files, model_name="bench", workers=1, buffer_size=DEFAULT_LIMITS.hash_buffer)
            hashing.append(time.perf_counter() - start)
            start = time.perf_counter()
            scan_serialization(sniffed, DEFAULT_LIMITS)
            walking.append(time.perf_counter() - start)
        hash_s, walk_s = statistics.median(hashing), statistics.median(walking)
        print(f"{len(files)} files, {total / 1e9:.2f} GB")
        print(f"hash (sha256, 1 worker):     {hash_s:.2f} s  {total / hash_s / 1e9:.2f} GB/s")
        print(f"serialization scan (walks):  {walk_s:.2f} s  {total / walk_s / 1e9:.2f} GB/s")
        print(f"scan / hash time ratio:      {walk_s / hash_s:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
