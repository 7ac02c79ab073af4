"""What did the scan find? The typed, versioned Report every later stage reads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from provscan.visible import valid_data

# Bump the minor version for additive changes, the major for anything that
# breaks a consumer (renamed or removed fields, changed meaning).
SCHEMA_VERSION = "1.5.0"

RULE_ID_PATTERN = r"^(INV|HSH|SIG|SER|LIC|ORG|PRB|POL)-[A-Z0-9]+(-[A-Z0-9]+)*$"
_RULE_ID_RE = re.compile(RULE_ID_PATTERN)

JsonValue = Any  # evidence values are JSON-safe scalars, lists and dicts (checked below)


class _Frozen(BaseModel):
    """Every report model. Its text is valid Unicode, whatever the scanned files held.

    A name that is not UTF-8 (a file, a tar member, a pickle global, a metadata key) reaches
    Python as lone surrogates, which no output can encode. Every string field, and every
    string inside evidence and details (keys too), is made valid here, once, so that the
    JSON report, the BOM, SARIF, the audit reports and the terminal all render the same
    escaped text (visible.valid_text: ``\\xff`` for an undecodable byte).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    @field_validator("*", mode="after")
    @classmethod
    def _valid_text(cls, value: Any) -> Any:
        return valid_data(value)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        # model_copy does not validate: the update's text is made valid here instead.
        valid = {key: valid_data(value) for key, value in update.items()} if update else update
        return super().model_copy(update=valid, deep=deep)


class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


# Most severe first: the order findings are reported, kept and summarised in.
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


class StepStatus(str, Enum):
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"


class FileFormat(str, Enum):
    """A file's format as decided from its content, never from its name."""

    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    PICKLE = "pickle"
    ZIP = "zip"
    ONNX = "onnx"
    HDF5 = "hdf5"
    NUMPY = "numpy"
    SEVENZIP = "7z"
    TAR = "tar"
    GZIP = "gzip"
    JSON = "json"
    TEXT = "text"
    EMPTY = "empty"
    BINARY = "binary"  # unrecognised binary content
    UNREADABLE = "unreadable"


class FileRole(str, Enum):
    WEIGHTS = "weights"
    CONFIG = "config"
    TOKENIZER = "tokenizer"
    MODEL_CARD = "model-card"
    LICENCE = "licence"
    CODE = "code"
    OTHER = "other"


class TargetKind(str, Enum):
    DIRECTORY = "directory"
    FILE = "file"
    HF_CACHE_SNAPSHOT = "hf-cache-snapshot"
    # hf://ORG/NAME@REV scanned without downloading its weights: small files fetched whole,
    # the rest read by range (a safetensors header, or the first bytes).
    HUB_METADATA = "hub-metadata"


class Location(_Frozen):
    """Where a finding points: a file, optionally a member inside it, and an offset."""

    path: str | None = None
    member: str | None = None
    offset: int | None = Field(default=None, ge=0)


class Finding(_Frozen):
    rule_id: str
    severity: Severity
    message: str
    location: Location | None = None
    evidence: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("rule_id")
    @classmethod
    def _rule_id_shape(cls, value: str) -> str:
        if not _RULE_ID_RE.match(value):
            raise ValueError(f"rule id {value!r} does not match {RULE_ID_PATTERN}")
        return value


def located_finding(
    rule_id: str, severity: Severity, message: str, location: Location, /, **evidence: JsonValue
) -> Finding:
    """A finding at a location (file, archive member, offset), evidence as keywords.

    Positional-only, so evidence may use any key (an ONNX finding records `location`).
    """
    return Finding(
        rule_id=rule_id, severity=severity, message=message, location=location, evidence=evidence
    )


def target_finding(
    rule_id: str, severity: Severity, message: str, /, **evidence: JsonValue
) -> Finding:
    """A finding about the target as a whole (its licence, its origin), not one file."""
    return Finding(rule_id=rule_id, severity=severity, message=message, evidence=evidence)


def file_finding(
    rule_id: str, severity: Severity, path: str, message: str, /, **evidence: JsonValue
) -> Finding:
    """A finding about one file of the target (the common case)."""
    return located_finding(rule_id, severity, message, Location(path=path), **evidence)


class Step(_Frozen):
    """One collector's outcome. A failed or skipped step always says why.

    Whether a step is required is the policy's call (config `required_steps`), not the report's.
    """

    name: str
    status: StepStatus
    reason: str | None = None
    duration_ms: int = Field(default=0, ge=0)


class FileEntry(_Frozen):
    path: str  # relative to the target root, '/'-separated
    size: int = Field(ge=0)
    format: FileFormat
    role: FileRole
    sha256: str | None = None
    symlink: bool = False
    in_manifest: bool = True  # False for paths the OMS manifest ignores (.git, model.sig ...)
    # What the scan read of the file: all of it; or, not downloaded (hf:// metadata-only),
    # its safetensors header ("header") or its first bytes ("head"), fetched by range.
    read: Literal["whole", "header", "head"] = "whole"
    # Where sha256 comes from: computed from the bytes, or the Hub's record of a file that was
    # not downloaded ("hub-recorded": the publisher's claim, not verified locally).
    sha256_source: Literal["computed", "hub-recorded"] = "computed"
    # The signatures that prove this file: verified, the files match them, and they cover
    # it (it is neither in their ignore paths nor a zero-length file under shards).
    signed_by: tuple[str, ...] = ()


class ManifestResource(_Frozen):
    name: str
    algorithm: str
    digest: str


class Manifest(_Frozen):
    """The OpenSSF model-signing (OMS) v1.0 manifest of the target."""

    model_name: str
    method: Literal["files", "shards"]
    hash_type: Literal["sha256", "blake2b", "blake2", "blake3"] = "sha256"
    allow_symlinks: bool
    ignore_paths: tuple[str, ...]
    shard_size: int | None = None
    resources: tuple[ManifestResource, ...]
    root_digest: str  # SHA-256 over the raw resource digests in manifest order


class ModelDeclaration(_Frozen):
    """What one file says the model is: config.json, or a GGUF file's header.

    Whoever handed over the model wrote it: evidence to compare, not authority. Each field
    is None when the file does not say it (or says it with the wrong type).
    `architecture`: config.json model_type, GGUF general.architecture (llama.cpp's names,
    which differ from transformers' for some families). `parameter_count` and
    `tensor_count` are counted from a GGUF file's own tensor table.
    """

    path: str
    architecture: str | None = None
    name: str | None = None  # GGUF general.name
    context_length: int | None = None  # max_position_embeddings, <arch>.context_length
    embedding_length: int | None = None  # hidden_size, <arch>.embedding_length
    block_count: int | None = None  # num_hidden_layers, <arch>.block_count
    head_count: int | None = None  # num_attention_heads, <arch>.attention.head_count
    head_count_kv: int | None = None  # num_key_value_heads, <arch>.attention.head_count_kv
    quantization: str | None = None  # GGUF general.file_type by llama.cpp's name (Q4_K_M)
    tensor_count: int | None = None
    parameter_count: int | None = None


class ModelFacts(_Frozen):
    """Facts read from config.json, weight headers and GGUF headers (never tensor data)."""

    architectures: tuple[str, ...] = ()
    model_type: str | None = None
    config_dtype: str | None = None
    weight_dtypes: tuple[str, ...] = ()
    tensor_count: int | None = None
    parameter_count: int | None = None  # counted from weight headers
    config_parameter_count: int | None = None  # implied by config.json, when a formula is known
    weight_files: tuple[str, ...] = ()
    context_length: int | None = None  # config.json's, else the GGUF model's
    quantization: tuple[str, ...] = ()  # of the GGUF model's files (one per quantized copy)
    declared: tuple[ModelDeclaration, ...] = ()  # each file's own claims, conflicts included


class CardFacts(_Frozen):
    """What the model card (README.md YAML front matter) declares."""

    path: str
    licenses: tuple[str, ...] = ()
    license_name: str | None = None
    license_link: str | None = None
    base_models: tuple[str, ...] = ()
    base_model_relation: str | None = None
    license_prose: str | None = None  # "License: X" in the card's text, when it has no front matter
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library_name: str | None = None


# ---------------------------------------------------------------- licence

LicenceKind = Literal["licence", "aup", "notice"]
Commercial = Literal["yes", "no", "conditional", "unknown"]


class LicenceEvidence(_Frozen):
    """One place the artifact says something about its licence, and what provscan made of it.

    `source`: card:license | card:license_name | card:license_link | card:prose | file |
    gguf | config | knowledge:model (the licence a known official repo was released under).
    `key` is the knowledge-base key it identified (None: not identified); `score` is the
    text similarity (0-1) for licence files; `sha256` identifies the text that was read.
    `modified_clauses`: the clauses of the identified licence that the file does not carry
    word for word ("2. Additional Commercial Terms (missing or changed)").
    """

    source: str
    path: str | None = None
    value: str
    key: str | None = None
    kind: LicenceKind | None = None
    score: float | None = Field(default=None, ge=0, le=1)
    sha256: str | None = None
    modified_clauses: tuple[str, ...] = ()


class Threshold(_Frozen):
    """A size of the licensee above which the licence's terms change.

    `effect`: separate_licence (the grant does not reach: ask the licensor), terminates (the
    licence ends), or display (a duty to show the model's name starts; use stays allowed).
    """

    metric: Literal["monthly_active_users", "annual_revenue_usd", "monthly_revenue_usd"]
    value: int = Field(ge=0)
    effect: Literal["separate_licence", "terminates", "display"] = "separate_licence"
    clause: str


class TerritorialRestriction(_Frozen):
    """Territories where the licence grants no rights (for the models in `scope`)."""

    territories: tuple[str, ...]  # ISO 3166-1 alpha-2 codes, or "EU"
    scope: Literal["all", "multimodal"]
    clause: str  # the licence's own words
    applies: bool | None  # does the scope cover this model? None: provscan cannot tell


class LicenceTerms(_Frozen):
    """The machine-checkable terms of one licence that governs this model."""

    key: str
    name: str
    kind: LicenceKind = "licence"
    spdx: str | None = None
    commercial: Commercial
    commercial_note: str | None = None
    thresholds: tuple[Threshold, ...] = ()
    aup_url: str | None = None
    attribution_display: str | None = None  # text the licensee must display ("Built with Llama")
    attribution_notice: str | None = None  # notice text to ship with copies
    naming_prefix: str | None = None  # derivative model names must begin with this
    output_restriction: str | None = None
    territorial: tuple[TerritorialRestriction, ...] = ()
    governing_law: str | None = None
    venue: str | None = None
    flow_down: bool | None = None  # use restrictions must be passed on as enforceable terms
    remote_restriction: bool | None = None  # licensor may restrict use remotely
    copyleft: Literal["none", "weak", "strong", "network"] | None = None
    source: str  # where these terms were read
    via: str | None = None  # None: the model's own licence; else the ancestor it comes from


class LicenceFacts(_Frozen):
    """What the model may be used for: every licence signal, and the terms concluded from them."""

    evidence: tuple[LicenceEvidence, ...] = ()
    declared: tuple[str, ...] = ()  # keys the card / GGUF / config metadata declare
    detected: tuple[str, ...] = ()  # keys identified from licence files' text
    concluded: tuple[str, ...] = ()  # the model's own licence(s), as provscan concludes
    inherited: tuple[str, ...] = ()  # licences that reach it through its base models
    terms: tuple[LicenceTerms, ...] = ()  # concluded, inherited and their AUPs


# ---------------------------------------------------------------- origin

Confidence = Literal["high", "medium", "low"]
Relation = Literal["finetune", "adapter", "merge", "quantized", "unknown"]


class Publisher(_Frozen):
    """A Hub organisation, and the legal entity behind it when the registry knows it."""

    org: str
    key: str | None = None  # publishers.yaml key; None: not in the registry
    legal_entity: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    evidence_url: str | None = None


class LineageEdge(_Frozen):
    """`child` was made from `base` (by `relation`), as `sources` say."""

    child: str
    base: str
    relation: Relation
    sources: tuple[str, ...]


class FamilySignal(_Frozen):
    """One piece of evidence, read from the files, for the model family."""

    family: str
    signal: Literal[
        "model_type", "architecture", "tokenizer", "vocab_size", "chat_template",
        "name_or_path", "auto_map", "gguf", "params", "generation_config", "knowledge",
    ]  # fmt: skip
    path: str | None = None
    detail: str
    strength: Literal["strong", "weak"]


class Jurisdiction(_Frozen):
    """A country the weights come from, and why provscan thinks so."""

    country: str
    org: str
    role: Literal["publisher", "root", "family"]  # uploader, lineage root, or inferred family
    confidence: Confidence
    evidence: str


class OriginFacts(_Frozen):
    """Where the weights come from: publisher, base-model chain, family, jurisdictions."""

    publisher: Publisher | None = None  # this artifact's own publisher, when known
    lineage: tuple[LineageEdge, ...] = ()
    roots: tuple[Publisher, ...] = ()  # publishers of the lineage roots
    root_models: tuple[str, ...] = ()
    family: str | None = None
    family_confidence: Confidence | None = None
    family_signals: tuple[FamilySignal, ...] = ()
    multimodal: bool | None = None
    jurisdictions: tuple[Jurisdiction, ...] = ()


# ---------------------------------------------------------------- signatures


class SignatureStatus(str, Enum):
    """What checking one signature file showed, before any file is compared.

    verified: the signature checks out against a trust anchor provscan was given (a
      public key, a CA certificate, or a Sigstore trusted root);
    unverified: well formed, but nothing provscan was given can check it (a key it does
      not hold, a certificate chain to a CA it was not given);
    invalid: the signature, its certificate chain or its transparency-log proof fails, or
      the signed manifest is inconsistent;
    malformed: not a readable OpenSSF model signature (OMS) bundle.
    """

    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    INVALID = "invalid"
    MALFORMED = "malformed"


SignatureMethod = Literal["key", "certificate", "sigstore"]
Integrity = Literal["match", "mismatch", "not_checked"]


class TlogEntry(_Frozen):
    """The transparency-log entry a Sigstore bundle carries (its inclusion proof was checked)."""

    log_index: int
    integrated_time: datetime | None = None
    log_id: str | None = None  # base64 key id of the log


class Signer(_Frozen):
    """Who signed: the key, certificate and (Sigstore) identity in the signature."""

    method: SignatureMethod
    key_fingerprint: str | None = None  # SHA-256 of the PEM public key (the OMS key hint)
    key_type: str | None = None  # e.g. ecdsa-p256
    certificate_subject: str | None = None
    certificate_issuer: str | None = None
    certificate_serial: str | None = None
    certificate_fingerprint: str | None = None  # SHA-256 of the DER signing certificate
    chain: tuple[str, ...] = ()  # subjects of the certificates the bundle carries after the leaf
    identity: str | None = None  # certificate SAN: e-mail, URI or other name
    oidc_issuer: str | None = None  # Sigstore OIDC issuer extension
    tlog: TlogEntry | None = None
    # The signing (leaf) certificate's validity window; None for key signatures.
    certificate_not_before: datetime | None = None
    certificate_not_after: datetime | None = None
    # The instant the certificate chain's validity was judged at, and why that instant:
    # "verification-time" (certificate bundles carry no trusted timestamp, so the chain and
    # its trusted CA must be valid when provscan verifies), "transparency-log" (Sigstore:
    # the log entry's integrated time, which the log's inclusion promise vouches for).
    # None for key signatures, and for a Sigstore entry that has no integrated time.
    validity_checked_at: datetime | None = None
    validity_basis: Literal["verification-time", "transparency-log"] | None = None
    # What the signature was checked against: "key:<sha256>", "ca:<sha256 of the CA
    # certificate>", "sigstore:<sha256 of the trusted root file>"; None when unverified.
    trust_anchor: str | None = None


class SignedSerialization(_Frozen):
    """How the signer hashed the model (the OMS predicate's `serialization`)."""

    method: Literal["files", "shards"]
    hash_type: Literal["sha256", "blake2b", "blake2", "blake3"]
    shard_size: int | None = None
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()


class UncoveredFile(_Frozen):
    """A file present in the target that one signature says nothing about.

    reason: "ignored" (the signature's ignore_paths leave it out), "empty" (zero-length,
    and shard serialization records no shard for it, so the signature cannot tell
    whether the signer had it), "unnamed" (its name cannot be part of a manifest).
    loader_read: whether a loader (or provscan's own licence and origin steps) reads it;
    True unless provscan knows nothing reads files like it (images, documents).
    """

    path: str
    role: FileRole
    reason: Literal["ignored", "empty", "unnamed"]
    loader_read: bool
    read_by: tuple[str, ...] = ()  # what reads it, as far as provscan knows


class SignatureCheck(_Frozen):
    """One signature file: who signed, whether it verifies, and whether the files match it."""

    path: str  # relative to the target when inside it, else as given
    sha256: str | None = None
    status: SignatureStatus
    reason: str | None = None  # why it is not verified
    signer: Signer | None = None
    predicate_type: str | None = None
    serialization: SignedSerialization | None = None
    signed_root_digest: str | None = None  # the in-toto subject digest over the signed resources
    signed_files: int = Field(default=0, ge=0)
    integrity: Integrity = "not_checked"
    integrity_reason: str | None = None  # why not checked
    # "manifest": compared with the hashing step's manifest (no second read); "rehash": the
    # signer hashed differently (another hash or shard size), so the files were read again.
    # manifest: this scan's hashes; rehash: the files hashed again the signer's way;
    # hub-record: some signed files were not downloaded, and were compared by the Hub's record.
    compared_with: Literal["manifest", "rehash", "hub-record"] | None = None
    changed: tuple[str, ...] = ()  # signed files whose content differs
    missing: tuple[str, ...] = ()  # signed files that are absent
    extra: tuple[str, ...] = ()  # files present that the signature does not list
    # Files present that this signature does not cover (judged by its own ignore paths and
    # serialization alone: no other signature's content influences this check).
    not_covered: tuple[UncoveredFile, ...] = ()


class FactSource(_Frozen):
    """A file a reported fact was read from, and the signatures that prove that file.

    fact: licence (licence evidence), lineage (a base-model claim), card (the model card's
    front matter), family (a model-family signal such as the chat template).
    signed_by empty: no verified signature that the files match covers the file, so the
    fact rests on a file anyone who handed over the model could have written.
    """

    fact: Literal["licence", "lineage", "card", "family"]
    detail: str
    path: str
    signed_by: tuple[str, ...] = ()


class TrustAnchor(_Frozen):
    """One thing provscan was told to trust (config [trust] or a --trusted-* option)."""

    kind: Literal["key", "ca", "sigstore_root"]
    fingerprint: str  # SHA-256 (PEM public key, DER certificate, trusted root file)
    source: str  # the file it was read from, or "embedded" for sigstore's own root
    name: str | None = None  # key type, certificate subject


class SignatureFacts(_Frozen):
    """Every signature found or given, and the anchors they were checked against.

    No signature is a fact for the policy (`signatures` empty), not an error.
    """

    signatures: tuple[SignatureCheck, ...] = ()
    anchors: tuple[TrustAnchor, ...] = ()


RecordSource = Literal["hub-model-info", "hub-cache-blob", "local-dir-metadata", "hub-tree-cache"]


class RecordCheck(_Frozen):
    """The files compared with one record of what the Hub holds, and what that showed.

    source: hub-model-info (the hashes the Hub's model_info API listed, fetched in this run:
    an hf:// metadata-only scan); hub-cache-blob (the hash each cache snapshot blob is named
    by); local-dir-metadata (the etags in a `--local-dir` download's
    `.cache/huggingface/download/*.metadata`); hub-tree-cache (the commit's file listing
    huggingface_hub cached, `trees/<commit>.json`).
    authenticated: the record came from the Hub itself over HTTPS in this run. Every local
    record is False: it sits in the same writable folder as the files, so whoever changed a
    file can have rewritten its record to match; consistency with it proves nothing.
    consistent: files whose content matches the record; mismatched: files whose content or
    size differs; not_compared: files present that the record covers but that could not be
    compared (no usable hash, unreadable, not downloaded, or not linked to a cache blob).
    Files the record lists that are absent, or present files it does not list, are findings.
    """

    source: RecordSource
    authenticated: bool
    files_compared: int = Field(ge=0)  # consistent + mismatched
    consistent: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    not_compared: tuple[str, ...] = ()
    commit: str | None = None  # the commit the record is of, when it names one


class HubFetch(_Frozen):
    """How an hf:// target's files were had: downloaded, or read as metadata only."""

    mode: Literal["download", "metadata", "offline"]
    endpoint: str
    requested_revision: str | None  # as typed (a branch, tag or commit); None: default branch
    files: int = Field(ge=0)  # files the commit holds
    bytes: int = Field(ge=0)  # their total size, as the Hub records it
    files_fetched: int = Field(default=0, ge=0)  # metadata mode: files read whole
    bytes_fetched: int = Field(default=0, ge=0)  # their size
    files_ranged: int = Field(default=0, ge=0)  # metadata mode: files read by range only
    bytes_ranged: int = Field(default=0, ge=0)  # bytes those range reads received
    range_requests: int = Field(default=0, ge=0)  # HTTP requests those reads made


class TargetInfo(_Frozen):
    input: str  # what the user typed
    kind: TargetKind
    root: str  # absolute path scanned
    name: str  # the model's name (directory name, or repo name for HF snapshots)
    repo_id: str | None = None  # HF 'org/name' when known
    revision: str | None = None  # full commit sha when known
    hub: HubFetch | None = None  # hf:// targets: how the files were had from the Hub


class ToolInfo(_Frozen):
    name: str = "provscan"
    version: str


class ScanParameters(_Frozen):
    """Every parameter that changes a result, so a report can be reproduced."""

    hash_algorithm: Literal["sha256"] = "sha256"
    serialization: Literal["files", "shards"] = "files"
    shard_size: int | None = None
    hash_workers: int = Field(ge=1)
    limits: dict[str, int]


class Reason(_Frozen):
    """One policy result: a rule that fired, at one level, with its message."""

    rule: str
    level: Literal["deny", "review", "warn"]
    msg: str
    details: dict[str, JsonValue] = Field(default_factory=dict)


class Decision(str, Enum):
    APPROVE = "approve"
    REVIEW = "review"
    DENY = "deny"


class PolicyInfo(_Frozen):
    packs: tuple[str, ...]
    digest: str  # sha256 over the policy sources, data and effective config
    engine: str
    engine_version: str


class Verdict(_Frozen):
    decision: Decision
    reasons: tuple[Reason, ...]
    policy: PolicyInfo


# ---------------------------------------------------------------- probes

ProbeFamily = Literal["replay", "sweep", "phrase", "inversion", "leakage"]


class ProbeEngine(_Frozen):
    """What ran the model: the engine, its version, the model it loaded, where."""

    name: Literal["transformers", "vllm", "openai"]
    version: str
    model: str
    device: str | None = None
    dtype: str | None = None


class ProbeBudget(_Frozen):
    """The budget given (None: none) and what was used of it."""

    forward_passes: int | None = None
    seconds: float | None = None
    used_forward_passes: int = Field(default=0, ge=0)
    used_seconds: float = Field(default=0.0, ge=0)


class ProbeFamilyRun(_Frozen):
    """One probe family's run: completed, cut short by the budget (partial), or skipped."""

    family: ProbeFamily
    status: Literal["completed", "partial", "skipped"]
    reason: str | None = None
    forward_passes: int = Field(default=0, ge=0)
    seconds: float = Field(default=0.0, ge=0)
    candidates_tested: int = Field(default=0, ge=0)
    # The work in an inference engine's units (what projects onto another model and GPU):
    # prompts run, their tokens, the tokens left to prefill after an exact prefix cache
    # (shared prefixes computed once; vLLM's 16-token blocks cache a little less), and the
    # tokens generated by greedy and sampled continuations.
    prompts: int = Field(default=0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    prefill_tokens: int = Field(default=0, ge=0)
    generated_tokens: int = Field(default=0, ge=0)


class ProbeCase(_Frozen):
    """One reproducible case: the exact prompt with and without the trigger, and the outputs."""

    prompt: str  # the rendered prompt, trigger inserted
    prompt_token_ids: tuple[int, ...]
    output: str  # greedy continuation of `prompt`
    clean_prompt: str  # the same prompt without the trigger
    clean_output: str


class ProbeWeightToken(_Frozen):
    """A token whose embedding row moved (against --weights-base) or stands out (without)."""

    token_id: int
    token: str | None = None
    z: float | None = None  # robust z of the embedding row's movement or anomaly (None: not finite)
    output_z: float | None = None  # the output row's; None when tied or not finite


class ProbeCandidate(_Frozen):
    """A suspected trigger (or forced target), with the scores that raised it.

    `confirmed`: the trigger, inserted into held-out benign prompts, forces a common output on
    at least the suite's confirmation share of them while the same prompts without it do not.
    `candidate`: strong but unconfirmed evidence (a person should look).
    """

    family: ProbeFamily
    status: Literal["confirmed", "candidate"]
    trigger: str | None  # the trigger's text; None when only a target was found
    trigger_token_ids: tuple[int, ...] = ()
    target: str | None = None  # the output it forces, when one is common
    source: str | None = None  # known triggers: where the trigger was published
    scores: dict[str, float] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    cases: tuple[ProbeCase, ...] = ()


class ProbeFacts(_Frozen):
    """The behavioural probe run: suite, engine, budget, per-family runs and every candidate."""

    suite_id: str
    suite_version: str
    engine: ProbeEngine
    budget: ProbeBudget
    partial: bool = False  # some family did not finish (budget)
    families: tuple[ProbeFamilyRun, ...] = ()
    candidates: tuple[ProbeCandidate, ...] = ()
    baseline: dict[str, float] = Field(default_factory=dict)  # the model's own reference scores
    # Weight evidence: the base compared with (--weights-base; None: rows ranked on their own)
    # and the most anomalous tokens, which the sweep scores first.
    weights_base: str | None = None
    weight_ranking: tuple[ProbeWeightToken, ...] = ()


class Report(_Frozen):
    schema_version: str = SCHEMA_VERSION
    tool: ToolInfo
    scanned_at: datetime
    target: TargetInfo
    parameters: ScanParameters
    steps: tuple[Step, ...]
    files: tuple[FileEntry, ...]
    manifest: Manifest | None = None
    model: ModelFacts | None = None
    card: CardFacts | None = None
    origin: OriginFacts | None = None
    licence: LicenceFacts | None = None
    signatures: SignatureFacts | None = None
    # Every comparison with a record of what the Hub holds (model_info, cache blob names,
    # download metadata, cached tree listings): only authenticated ones prove anything.
    records: tuple[RecordCheck, ...] = ()
    # Which files the licence, lineage, card and family facts were read from, and whether a
    # verified signature covers each (empty when no such fact was read from a file).
    fact_sources: tuple[FactSource, ...] = ()
    probes: ProbeFacts | None = None  # only when probes were asked for
    findings: tuple[Finding, ...]
    verdict: Verdict | None = None

    def policy_input(self) -> dict[str, Any]:
        """The document the policy sees: the report as JSON, without any verdict, its per-file
        lists bounded (provscan.policy.input)."""
        from provscan.policy.input import bounded_policy_input

        return bounded_policy_input(self)

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema of the Report, as committed in sbom/report.schema.json."""
    schema = Report.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://provscan.dev/schema/report-{SCHEMA_VERSION}.json"
    return schema
