"""What does a benchmark model look like? Safetensors-shaped weight files written at disk speed.

Shared by the benchmarks that need gigabytes of weights: one 64 MiB block of random bytes,
reused with a counter stamped into each copy so that no two blocks are equal (generating
fresh random bytes runs far below disk speed), behind a valid safetensors header.
"""

from __future__ import annotations

import json
from pathlib import Path

BLOCK = 64 * 1024 * 1024


def safetensors_header(data_len: int) -> bytes:
    header = json.dumps(
        {"weight": {"dtype": "U8", "shape": [data_len], "data_offsets": [0, data_len]}}
    ).encode()
    header += b" " * (-len(header) % 8)  # data starts 8-byte aligned, as writers do
    return len(header).to_bytes(8, "little") + header


def write_weight_file(path: Path, data_len: int, block: bytearray, counter: int) -> int:
    """Write one weight file of `data_len` data bytes; return the next block counter."""
    with path.open("wb") as out:
        out.write(safetensors_header(data_len))
        remaining = data_len
        while remaining:
            block[:8] = counter.to_bytes(8, "little")
            counter += 1
            count = min(len(block), remaining)
            out.write(memoryview(block)[:count])
            remaining -= count
    return counter


def write_small_files(model: Path) -> None:
    """The config files every benchmark model carries."""
    (model / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, indent=2)
    )
    (model / "generation_config.json").write_text('{"do_sample": false}\n')
