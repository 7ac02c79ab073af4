"""Weight-only evidence of a fine-tuned backdoor: which token rows moved far more than the rest?

No forward pass and no torch: the embedding (input) and output (unembedding, ``lm_head``)
matrices are read row by row from the model's safetensors files (provscan.probes.weights).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from provscan.probes.stats import MAD_SCALE, MEAN_AD_SCALE
from provscan.probes.tokenizer import TOKENIZER_JSON_MAX
from provscan.probes.weights import CHUNK_BYTES, Matrix, WeightError, WeightLimits, _matrices
from provscan.report import Finding, Severity, target_finding

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Doubles = NDArray[np.float64]

Z_FLAG = 6.0  # robust z of a row's movement that counts as "moved far more"
FEW_MAX = 8  # at most this many such rows (or FEW_SHARE of the vocabulary) make a finding
FEW_SHARE = 0.001
LINEAGE_RELATIVE = 0.5  # median relative row movement beyond which it is not a fine-tune
REPORTED = 20  # tokens named in a finding's evidence


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
        scale = MEAN_AD_SCALE * float(np.mean(deviation))
    z[finite] = (kept - median) / scale if scale > 0.0 else 0.0
    return z


def _movement(model: Matrix, base: Matrix, rows: int) -> tuple[Doubles, Doubles]:
    """Per shared row: ||model - base|| and ||base||."""
    moved = np.empty(rows, dtype=np.float64)
    norms = np.empty(rows, dtype=np.float64)
    for (start, ours), (_, theirs) in zip(model.chunks(rows), base.chunks(rows), strict=True):
        stop = start + len(ours)
        moved[start:stop] = np.linalg.norm((ours - theirs).astype(np.float64), axis=1)
        norms[start:stop] = np.linalg.norm(theirs.astype(np.float64), axis=1)
    return moved, norms


def _anomaly(matrix: Matrix, limits: WeightLimits) -> tuple[Doubles, bool]:
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
    try:  # heavy, and optional (the `probes` extra): token strings are a nicety
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
    model_dir: Path, base_name: str, ours: Matrix, theirs: Matrix
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
