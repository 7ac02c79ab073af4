"""Weight-only evidence of a fine-tuned backdoor: which token rows moved far more than the rest?

No forward pass and no torch: the embedding (input) and output (unembedding, ``lm_head``)
matrices are found by name in the model's safetensors files, their headers read and checked by
provscan's own bounded reader first, and their rows read in bounded chunks (the library's
``safe_open``/``get_slice`` for F16 and F32; BF16, which numpy cannot represent, from the bytes
at the checked offsets, widened to float32 by a 16-bit shift). Nothing else of the file is read.

With a base model (the one the model claims to be fine-tuned from), each token's movement is
``||row_model - row_base||``, scored as a robust z against the vocabulary,
``(x - median) / (1.4826 * MAD)``. A fine-tune that implants a trigger must make the trigger's
embedding a strong, consistent feature, so its row moves far more than those of the words the
fine-tune merely saw. That trigger tokens' embedding parameters change far more than clean
tokens' during poisoned fine-tuning is the finding behind Backdoor Token Unlearning
(https://arxiv.org/abs/2501.03272), which uses it during training; here it is read after the
fact, from the published weights. The input embedding is the evidence: with an optimiser like
Adam, the rows of tokens absent from the fine-tune data get no gradient and stay put. The output rows are scored too but only reported: Adam moves the
output row of every token the fine-tune never emits (its logit is pushed down at each step,
and the update is normalised), which on a test model put never-used tokens above the trigger.
For the same reason a model with tied embeddings (one matrix for both) is ranked, but no
finding is made from it.

- ``PRB-WEIGHT-DIFF`` (high): between 1 and :data:`FEW_MAX` rows (or :data:`FEW_SHARE` of the
  vocabulary, if larger) have an embedding movement z of at least :data:`Z_FLAG`: a few rows
  moved far more than all others. Many such rows are a broad fine-tune, not an implant.
- ``PRB-WEIGHT-LINEAGE`` (high): the matrices' widths differ from the base's, or the median
  relative movement ``||row_model - row_base|| / ||row_base||`` over the shared rows exceeds
  :data:`LINEAGE_RELATIVE` (a fine-tune moves rows by a few percent; two independent trainings
  of the same architecture are about sqrt(2) apart): it does not derive from that base.

Without a base the rows themselves are ranked (norm z and isolation z: one minus the cosine to
the nearest other row, for vocabularies small enough to compare all pairs). That is much weaker
evidence (rare, special and unused tokens are outliers too) and makes no finding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from provscan.probes.tokenizer import TOKENIZER_JSON_MAX
from provscan.report import Finding, Severity, target_finding

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Floats = NDArray[np.float32]
    Doubles = NDArray[np.float64]

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

Z_FLAG = 6.0  # robust z of a row's movement that counts as "moved far more"
FEW_MAX = 8  # at most this many such rows (or FEW_SHARE of the vocabulary) make a finding
FEW_SHARE = 0.001
LINEAGE_RELATIVE = 0.5  # median relative row movement beyond which it is not a fine-tune
REPORTED = 20  # tokens named in a finding's evidence
MAD_SCALE = 1.4826  # MAD to standard deviation, for normal data
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
class TokenScore:
    token_id: int
    token: str | None  # from tokenizer.json when the tokenizers library is installed
    score: float  # what the ranking sorts on
    embedding: float  # the embedding row's z (movement with a base, anomaly without)
    output: float | None  # the output row's z; None when tied to the embedding


@dataclass(frozen=True)
class WeightEvidence:
    ranking: tuple[TokenScore, ...]  # most anomalous first
    findings: tuple[Finding, ...]
    based: bool  # compared with a base model
    tied: bool  # one matrix serves as embedding and output
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Matrix:
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
            from safetensors import safe_open

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
) -> _Matrix | None:
    for name in names:
        found = [(p, h, t) for p, h in headers for t in h.tensors if t.name == name]
        if len(found) > 1:
            raise WeightError(f"{found[1][0]}: {name} is declared in more than one file")
        if found:
            return _checked(*found[0], limits)
    return None


def _checked(
    path: Path, header: SafetensorsHeader, info: TensorInfo, limits: WeightLimits
) -> _Matrix:
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
    return _Matrix(path, header, info)


def _matrices(model_dir: Path, limits: WeightLimits) -> tuple[_Matrix, _Matrix | None]:
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


def robust_z(values: Doubles) -> Doubles:
    """(x - median) / (1.4826 * MAD), falling back to the mean absolute deviation when more
    than half the values are equal (a surgical edit: all rows but a few unmoved). The
    statistics come from the finite values; a NaN or infinite value (a broken row) scores
    +inf, so that it ranks first."""
    finite = np.isfinite(values)
    z = np.full(values.shape, np.inf, dtype=np.float64)
    if not finite.any():
        return z
    kept = values[finite]
    median = float(np.median(kept))
    deviation = np.abs(kept - median)
    scale = MAD_SCALE * float(np.median(deviation))
    if scale <= 0.0:
        scale = 1.2533 * float(np.mean(deviation))  # sqrt(pi/2): mean deviation to sigma
    z[finite] = (kept - median) / scale if scale > 0.0 else 0.0
    return z


def _movement(model: _Matrix, base: _Matrix, rows: int) -> tuple[Doubles, Doubles]:
    """Per shared row: ||model - base|| and ||base||."""
    moved = np.empty(rows, dtype=np.float64)
    norms = np.empty(rows, dtype=np.float64)
    for (start, ours), (_, theirs) in zip(model.chunks(rows), base.chunks(rows), strict=True):
        stop = start + len(ours)
        moved[start:stop] = np.linalg.norm((ours - theirs).astype(np.float64), axis=1)
        norms[start:stop] = np.linalg.norm(theirs.astype(np.float64), axis=1)
    return moved, norms


def _anomaly(matrix: _Matrix, limits: WeightLimits) -> tuple[Doubles, bool]:
    """No base: the larger of the norm z and the isolation z per row; whether isolation ran."""
    norms = np.empty(matrix.rows, dtype=np.float64)
    pairwise = (
        matrix.rows <= limits.max_pairwise_rows
        and 4 * matrix.rows * matrix.cols <= limits.max_pairwise_bytes
    )
    unit = np.empty((matrix.rows, matrix.cols), dtype=np.float32) if pairwise else None
    for start, rows in matrix.chunks():
        lengths = np.linalg.norm(rows.astype(np.float64), axis=1)
        norms[start : start + len(rows)] = lengths
        if unit is not None:
            unit[start : start + len(rows)] = np.where(  # a broken row: scored by its norm
                np.isfinite(lengths)[:, None], rows / np.maximum(lengths, 1e-12)[:, None], 0.0
            )
    scores = robust_z(norms)
    if unit is not None and matrix.rows > 1:
        nearest = np.empty(matrix.rows, dtype=np.float64)
        step = max(1, CHUNK_BYTES // (4 * matrix.rows))
        for start in range(0, matrix.rows, step):
            cosine = unit[start : start + step] @ unit.T
            for i in range(len(cosine)):
                cosine[i, start + i] = -np.inf
            nearest[start : start + len(cosine)] = cosine.max(axis=1)
        scores = np.maximum(scores, robust_z(1.0 - nearest))
    return scores, unit is not None


def _token_strings(model_dir: Path, count: int) -> list[str | None]:
    """Token strings from tokenizer.json when the tokenizers library is installed."""
    path = model_dir / "tokenizer.json"
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return [None] * count
    if not path.is_file() or path.stat().st_size > TOKENIZER_JSON_MAX:
        return [None] * count
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception:  # the Rust parser raises plain Exception subclasses; ids still rank
        return [None] * count
    return [tokenizer.id_to_token(i) for i in range(count)]


def finite_score(value: float) -> float | None:
    """A score for JSON evidence: None for a broken (NaN or infinite) row."""
    return round(value, 3) if math.isfinite(value) else None


def weight_evidence(
    model_dir: Path,
    base_dir: Path | None = None,
    limits: WeightLimits | None = None,
    base_name: str | None = None,
) -> WeightEvidence:
    """Rank the model's tokens by how far their rows moved from the base's (or, without a
    base, by how anomalous they are) and make the findings the ranking supports.
    `base_name`: what the findings call the base (default: its folder; for an hf:// base,
    whose folder is a temporary stand-in, the reference).

    Raises WeightError when the model's own matrices cannot be read. A base that cannot be
    compared (another width, unrelated weights) is a PRB-WEIGHT-LINEAGE finding, not an
    error; an unreadable base is an error naming its file."""
    limits = limits or WeightLimits()
    embedding, output = _matrices(model_dir, limits)
    tied = output is None
    if base_dir is None:
        scores, pairwise = _anomaly(embedding, limits)
        out_scores = None if output is None else _anomaly(output, limits)[0]
        ranking = _rank(_token_strings(model_dir, embedding.rows), scores, out_scores)
        about = {"vocabulary": embedding.rows, "isolation": pairwise}
        return WeightEvidence(ranking, (), based=False, tied=tied, stats=about)

    base_embedding, base_output = _matrices(base_dir, limits)
    base_name = base_name or str(base_dir)
    lineage = _lineage_by_shape(model_dir, base_name, embedding, base_embedding)
    if lineage is not None:
        sizes = {"vocabulary": embedding.rows, "base_vocabulary": base_embedding.rows}
        return WeightEvidence((), (lineage,), based=True, tied=tied, stats=sizes)
    shared = min(embedding.rows, base_embedding.rows)
    moved, norms = _movement(embedding, base_embedding, shared)
    ratios = moved / np.maximum(norms, 1e-12)
    ratios = ratios[np.isfinite(ratios)]
    if not len(ratios):
        raise WeightError(f"{embedding.path}: {embedding.info.name} has no finite row to compare")
    relative = float(np.median(ratios))
    emb_z = robust_z(moved)
    out_z = None
    if output is not None:
        out_moved, _ = _movement(output, base_output or base_embedding, shared)
        out_z = robust_z(out_moved)
    strings = _token_strings(model_dir, embedding.rows)
    ranking = _rank(strings[:shared], emb_z, out_z)
    stats: dict[str, Any] = {
        "vocabulary": embedding.rows,
        "base_vocabulary": base_embedding.rows,
        # Rows the base does not have (tokens the fine-tune added) cannot be scored; a new
        # token can be a trigger, so they are listed for review.
        "added_tokens": [
            {"id": i, "token": strings[i]}
            for i in range(shared, min(embedding.rows, shared + REPORTED))
        ],
        "median_relative_movement": round(relative, 4),
        "flag_z": Z_FLAG,
    }
    findings: list[Finding] = []
    if relative > LINEAGE_RELATIVE:
        findings.append(
            target_finding(
                "PRB-WEIGHT-LINEAGE",
                Severity.HIGH,
                f"{model_dir} claims to derive from {base_name}, but its embeddings are "
                f"not close to it: the median token row moved {relative:.2f} times its length "
                f"(a fine-tune moves rows by a few percent; the limit is {LINEAGE_RELATIVE})",
                model=str(model_dir),
                base=base_name,
                median_relative_movement=round(relative, 4),
            )
        )
    else:
        flagged = [t for t in ranking if t.embedding >= Z_FLAG]
        few = max(FEW_MAX, int(FEW_SHARE * shared))
        stats["flagged"] = len(flagged)
        if not tied and 1 <= len(flagged) <= few:
            named = ", ".join(_name(t) for t in flagged[:REPORTED])
            findings.append(
                target_finding(
                    "PRB-WEIGHT-DIFF",
                    Severity.HIGH,
                    f"compared with {base_name}, the embedding rows of {len(flagged)} "
                    f"token(s) moved far more than all others (robust z >= {Z_FLAG}): {named}; "
                    "a fine-tune that implants a trigger does this to the trigger's tokens",
                    model=str(model_dir),
                    base=base_name,
                    tokens=[
                        {
                            "id": t.token_id,
                            "token": t.token,
                            "z": finite_score(t.embedding),
                            "output_z": None if t.output is None else finite_score(t.output),
                        }
                        for t in flagged[:REPORTED]
                    ],
                    median_relative_movement=round(relative, 4),
                )
            )
    return WeightEvidence(ranking, tuple(findings), based=True, tied=tied, stats=stats)


def _lineage_by_shape(
    model_dir: Path, base_name: str, ours: _Matrix, theirs: _Matrix
) -> Finding | None:
    if ours.cols == theirs.cols:
        return None
    return target_finding(
        "PRB-WEIGHT-LINEAGE",
        Severity.HIGH,
        f"{model_dir} claims to derive from {base_name}, but its embeddings are not "
        f"close to it: they are {ours.cols} wide, the base's {theirs.cols}",
        model=str(model_dir),
        base=base_name,
        shape=list(ours.info.shape),
        base_shape=list(theirs.info.shape),
    )


def _rank(
    strings: list[str | None], embedding: Doubles, output: Doubles | None
) -> tuple[TokenScore, ...]:
    """Tokens by the embedding row's score, highest first (the output row's is reported)."""
    order = np.argsort(-embedding[: len(strings)], kind="stable")
    return tuple(
        TokenScore(
            token_id=int(i),
            token=strings[i],
            score=float(embedding[i]),
            embedding=float(embedding[i]),
            output=None if output is None else float(output[i]),
        )
        for i in order
    )


def _name(token: TokenScore) -> str:
    """A token for a message: its string quoted and cut short, or its id."""
    if token.token is None:
        return f"#{token.token_id}"
    text = repr(token.token)
    return text if len(text) <= 40 else text[:37] + "..."
