"""Where are a model's embedding and output matrices, and how are their rows read?

No forward pass and no torch: the embedding (input) and output (unembedding, ``lm_head``)
matrices are found by name in the model's safetensors files, their headers read and checked by
provscan's own bounded reader first, and their rows read in bounded chunks (the library's
``safe_open``/``get_slice`` for F16 and F32; BF16, which numpy cannot represent, from the bytes
at the checked offsets, widened to float32 by a 16-bit shift). Nothing else of the file is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from provscan.collectors.serialization.safetensors.header import (
    SafetensorsError,
    SafetensorsHeader,
    TensorInfo,
    read_header,
)
from provscan.errors import ProvscanError
from provscan.limits import DEFAULT_LIMITS

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Floats = NDArray[np.float32]

EMBEDDING_NAMES = (
    "model.embed_tokens.weight",
    "transformer.wte.weight",
    "tok_embeddings.weight",
    "gpt_neox.embed_in.weight",
    "transformer.word_embeddings.weight",
    "model.decoder.embed_tokens.weight",
    "model.language_model.embed_tokens.weight",
    "language_model.model.embed_tokens.weight",
    "embed_tokens.weight",
)
OUTPUT_NAMES = (
    "lm_head.weight",
    "output.weight",
    "embed_out.weight",
    "language_model.lm_head.weight",
)
DTYPES: dict[str, int] = {"F32": 4, "F16": 2, "BF16": 2}

CHUNK_BYTES = 64 * 1024 * 1024  # float32 bytes per chunk of rows


class WeightError(ProvscanError):
    """The embedding or output matrix cannot be read from the model's safetensors files."""


@dataclass(frozen=True)
class WeightLimits:
    max_rows: int = 4 * 1024 * 1024  # vocabulary size
    max_cols: int = 65_536  # hidden size
    max_matrix_bytes: int = 16 * 1024**3  # one matrix as stored
    max_pairwise_rows: int = 32_768  # nearest-neighbour isolation (no base) up to this vocabulary
    max_pairwise_bytes: int = 1024**3  # and up to this size of the float32 matrix it needs
    header_max: int = DEFAULT_LIMITS.safetensors_header_max


@dataclass(frozen=True)
class Matrix:
    path: Path
    header: SafetensorsHeader
    info: TensorInfo

    @property
    def rows(self) -> int:
        return self.info.shape[0]

    @property
    def cols(self) -> int:
        return self.info.shape[1]

    def chunks(self, stop: int | None = None) -> Iterator[tuple[int, Floats]]:
        """(start, float32 rows) pairs covering rows [0, stop), CHUNK_BYTES at a time."""
        stop = self.rows if stop is None else stop
        step = max(1, CHUNK_BYTES // (4 * max(1, self.cols)))
        try:
            if self.info.dtype == "BF16":
                with open(self.path, "rb") as handle:
                    for start in range(0, stop, step):
                        yield start, self._bf16(handle, start, min(stop, start + step))
                return
            from safetensors import safe_open  # optional (the `probes` extra), native code

            with safe_open(str(self.path), framework="numpy") as opened:
                view = opened.get_slice(self.info.name)
                for start in range(0, stop, step):
                    rows = np.asarray(view[start : min(stop, start + step)], dtype=np.float32)
                    if rows.shape != (min(stop, start + step) - start, self.cols):
                        raise WeightError(
                            f"{self.path}: {self.info.name} read back as {rows.shape}"
                        )
                    yield start, rows
        except (OSError, ValueError, TypeError) as exc:
            raise WeightError(f"{self.path}: cannot read {self.info.name}: {exc}") from exc
        except Exception as exc:  # safetensors' Rust errors derive from Exception only
            if isinstance(exc, WeightError):
                raise
            raise WeightError(f"{self.path}: cannot read {self.info.name}: {exc}") from exc

    def _bf16(self, handle: Any, start: int, stop: int) -> Floats:
        data_start = 8 + self.header.header_len + self.info.start
        handle.seek(data_start + start * self.cols * 2)
        size = (stop - start) * self.cols * 2
        raw = handle.read(size)
        if len(raw) != size:
            raise WeightError(f"{self.path}: {self.info.name} ends before its declared size")
        wide = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return wide.view(np.float32).reshape(stop - start, self.cols)


def _headers(model_dir: Path, limits: WeightLimits) -> list[tuple[Path, SafetensorsHeader]]:
    files = sorted(p for p in model_dir.glob("*.safetensors") if p.is_file())
    if not files:
        raise WeightError(f"{model_dir}: no *.safetensors weights to read embeddings from")
    headers = []
    for path in files:
        try:
            with open(path, "rb") as handle:
                header = read_header(handle, max_header=limits.header_max)
        except SafetensorsError as exc:
            raise WeightError(f"{path}: unreadable safetensors header: {exc.message}") from exc
        except OSError as exc:
            raise WeightError(f"{path}: {exc}") from exc
        if header.problems:
            problem = header.problems[0]
            where = f" ({problem.tensor})" if problem.tensor else ""
            raise WeightError(f"{path}: malformed safetensors header{where}: {problem.message}")
        headers.append((path, header))
    return headers


def _find(
    headers: list[tuple[Path, SafetensorsHeader]], names: tuple[str, ...], limits: WeightLimits
) -> Matrix | None:
    for name in names:
        found = [(p, h, t) for p, h in headers for t in h.tensors if t.name == name]
        if len(found) > 1:
            raise WeightError(f"{found[1][0]}: {name} is declared in more than one file")
        if found:
            return _checked(*found[0], limits)
    return None


def _checked(
    path: Path, header: SafetensorsHeader, info: TensorInfo, limits: WeightLimits
) -> Matrix:
    if len(info.shape) != 2:
        raise WeightError(f"{path}: {info.name} has shape {list(info.shape)}, not a matrix")
    if info.dtype not in DTYPES:
        raise WeightError(
            f"{path}: {info.name} is {info.dtype}; weight evidence reads F32, F16 and BF16 only"
        )
    rows, cols = info.shape
    if not (1 <= rows <= limits.max_rows and 1 <= cols <= limits.max_cols):
        raise WeightError(
            f"{path}: {info.name} has shape {list(info.shape)}, outside the limits "
            f"({limits.max_rows} rows, {limits.max_cols} columns)"
        )
    size = rows * cols * DTYPES[info.dtype]
    if size > limits.max_matrix_bytes:
        raise WeightError(f"{path}: {info.name} is {size} bytes, over {limits.max_matrix_bytes}")
    if info.end - info.start != size:
        raise WeightError(f"{path}: {info.name} declares {info.end - info.start} bytes for {size}")
    return Matrix(path, header, info)


def _matrices(model_dir: Path, limits: WeightLimits) -> tuple[Matrix, Matrix | None]:
    """The embedding matrix and the output matrix (None when tied to the embedding)."""
    headers = _headers(model_dir, limits)
    embedding = _find(headers, EMBEDDING_NAMES, limits)
    output = _find(headers, OUTPUT_NAMES, limits)
    if embedding is None:
        if output is None:
            raise WeightError(
                f"{model_dir}: no embedding matrix found (looked for {', '.join(EMBEDDING_NAMES)})"
            )
        embedding, output = output, None  # only an output matrix: rank what there is
    if output is not None and output.info.shape != embedding.info.shape:
        raise WeightError(
            f"{output.path}: {output.info.name} has shape {list(output.info.shape)}, the "
            f"embedding {list(embedding.info.shape)}"
        )
    return embedding, output
