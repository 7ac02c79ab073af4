"""What does an OMS signature file claim? Parse the bundle and its signed statement, bounded.

An OpenSSF model signature is a Sigstore bundle JSON wrapping a DSSE envelope whose payload
is an in-toto Statement v1 with predicate `https://model_signing/signature/v1.0`: how the
model was hashed (`serialization`) and one digest per file or shard (`resources`). Nothing
here is authenticated yet (provscan.signing.verify does that); it is read first because the
signed serialization decides how the hashing step hashes, so every file is read once.

model_signing parses the same payload (`dsse_payload_to_manifest`), but on hostile input it
raises KeyError / TypeError with no useful message and has no size bounds; this module
checks every field's type and bound and says which one is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from provscan.files import read_at_most
from provscan.parsing import HostileData, parse_json
from provscan.report import SignatureMethod, SignedSerialization

BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_V1 = "https://model_signing/signature/v1.0"
# model_signing v0.2 signatures: one in-toto subject per file, no serialization block.
PREDICATE_V02 = "https://model_signing/Digests/v0.1"
# model_signing records BLAKE2 as "blake2b" (its digest name), though its API calls it "blake2".
HASH_TYPES = ("sha256", "blake2b", "blake2", "blake3")
_HEX = re.compile(r"^[0-9a-f]+$")


class SignatureFormatError(Exception):
    """The file is not a readable OMS signature; the message says what is wrong.

    `sha256` is the digest of the bytes that were rejected, when the file could be read.
    """

    def __init__(self, message: str, sha256: str | None = None) -> None:
        super().__init__(message)
        self.sha256 = sha256


@dataclass(frozen=True)
class Envelope:
    """A Sigstore bundle holding a DSSE envelope, as read (nothing checked yet)."""

    sha256: str
    raw: bytes
    document: dict[str, Any]
    method: SignatureMethod
    payload: bytes  # the DSSE payload exactly as signed


@dataclass(frozen=True)
class ParsedSignature:
    """An OMS signature file as read, before any cryptographic check."""

    envelope: Envelope
    predicate_type: str
    serialization: SignedSerialization
    resources: dict[str, tuple[str, str]]  # resource name -> (algorithm, hex digest)
    subject_digest: str | None  # in-toto subject sha256 (the root digest); None for v0.2


def read_signature(path: Path, max_bytes: int, max_resources: int) -> ParsedSignature:
    """Read and parse one OMS signature file; SignatureFormatError says what is wrong with it."""
    envelope = read_envelope(path, max_bytes)
    try:
        statement = json_object(envelope.payload, "DSSE payload")
        predicate_type, serialization, resources, subject_digest = parse_statement(
            statement, max_resources
        )
    except SignatureFormatError as exc:
        raise SignatureFormatError(str(exc), envelope.sha256) from exc
    return ParsedSignature(
        envelope=envelope,
        predicate_type=predicate_type,
        serialization=serialization,
        resources=resources,
        subject_digest=subject_digest,
    )


def read_envelope(path: Path, max_bytes: int) -> Envelope:
    """Read a Sigstore bundle with a DSSE envelope (an OMS signature, a signed AI-BOM)."""
    try:
        raw = read_at_most(path, max_bytes)
    except OSError as exc:
        raise SignatureFormatError(f"cannot be read ({exc.strerror or exc})") from exc
    if len(raw) > max_bytes:
        raise SignatureFormatError(f"larger than {max_bytes} bytes, the signature size limit")
    try:
        return _envelope(raw)
    except SignatureFormatError as exc:
        raise SignatureFormatError(str(exc), hashlib.sha256(raw).hexdigest()) from exc


def _envelope(raw: bytes) -> Envelope:
    if not raw.strip():
        raise SignatureFormatError("empty")
    try:
        document = parse_json(raw)
    except HostileData as exc:
        raise SignatureFormatError(f"not usable JSON: it {exc.problem}") from exc
    except UnicodeDecodeError as exc:
        raise SignatureFormatError(f"not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise SignatureFormatError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise SignatureFormatError("JSON nested too deeply") from exc
    if not isinstance(document, dict):
        raise SignatureFormatError(
            f"a JSON {type(document).__name__}, not a Sigstore bundle object"
        )
    return Envelope(
        sha256=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        document=document,
        method=bundle_method(document),
        payload=_dsse_payload(document),
    )


def bundle_method(document: dict[str, Any]) -> SignatureMethod:
    """Which OMS signing method made this bundle, from its verification material."""
    media_type = document.get("mediaType")
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise SignatureFormatError(
            f"mediaType {str(media_type)[:100]!r} is not a Sigstore bundle's"
        )
    material = document.get("verificationMaterial")
    if not isinstance(material, dict):
        raise SignatureFormatError("the bundle has no verificationMaterial object")
    tlog = material.get("tlogEntries") or []
    if not isinstance(tlog, list):
        raise SignatureFormatError("verificationMaterial.tlogEntries is not a list")
    if "publicKey" in material:
        return "key"
    if "certificate" in material or ("x509CertificateChain" in material and tlog):
        return "sigstore"  # a Fulcio certificate with its transparency-log entries
    if "x509CertificateChain" in material:
        return "certificate"
    raise SignatureFormatError("verificationMaterial holds no public key, certificate or chain")


def _dsse_payload(document: dict[str, Any]) -> bytes:
    envelope = document.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise SignatureFormatError("the bundle holds no DSSE envelope (dsseEnvelope)")
    if envelope.get("payloadType") != DSSE_PAYLOAD_TYPE:
        raise SignatureFormatError(
            f"DSSE payloadType {str(envelope.get('payloadType'))[:100]!r}, expected {DSSE_PAYLOAD_TYPE}"
        )
    signatures = envelope.get("signatures")
    if (
        not isinstance(signatures, list)
        or len(signatures) != 1
        or not isinstance(signatures[0], dict)
    ):
        raise SignatureFormatError("the DSSE envelope must hold exactly one signature")
    for field_name, value in (
        ("payload", envelope.get("payload")),
        ("signature", signatures[0].get("sig")),
    ):
        if not isinstance(value, str) or not value:
            raise SignatureFormatError(f"the DSSE {field_name} is missing")
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SignatureFormatError(f"the DSSE {field_name} is not valid base64") from exc
        if field_name == "payload":
            payload = decoded
    return payload


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = parse_json(raw)
    except HostileData as exc:
        raise SignatureFormatError(f"the {what} is not valid JSON: it {exc.problem}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SignatureFormatError(f"the {what} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise SignatureFormatError(f"the {what} is not a JSON object")
    return value


def parse_statement(
    statement: dict[str, Any], max_resources: int
) -> tuple[str, SignedSerialization, dict[str, tuple[str, str]], str | None]:
    """(predicate type, serialization, resources, root digest) of an OMS in-toto statement."""
    if statement.get("_type") != STATEMENT_TYPE:
        raise SignatureFormatError(f"the payload is not an in-toto {STATEMENT_TYPE} statement")
    predicate_type = statement.get("predicateType")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise SignatureFormatError("the statement has no subject")
    if predicate_type == PREDICATE_V02:
        return (
            predicate_type,
            SignedSerialization(method="files", hash_type="sha256"),
            _v02(subjects, max_resources),
            None,
        )
    if predicate_type != PREDICATE_V1:
        raise SignatureFormatError(
            f"predicateType {str(predicate_type)[:100]!r} is not an OpenSSF model signature ({PREDICATE_V1})"
        )
    if len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise SignatureFormatError(
            f"the statement must have exactly one subject, it has {len(subjects)}"
        )
    root = (
        (subjects[0].get("digest") or {}).get("sha256")
        if isinstance(subjects[0].get("digest"), dict)
        else None
    )
    if not isinstance(root, str) or not _is_hex(root, 64):
        raise SignatureFormatError("the statement's subject has no SHA-256 digest")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise SignatureFormatError("the statement has no predicate object")
    serialization = _serialization(predicate.get("serialization"), max_resources)
    resources, raw_digests = _resources(predicate.get("resources"), serialization, max_resources)
    # The subject digest is SHA-256 over the raw resource digests in the listed order
    # (OMS spec 6.5.1; model_signing's Payload): a resource list edited after signing no
    # longer matches it, whatever the signature says.
    computed = hashlib.sha256(b"".join(raw_digests)).hexdigest()
    if computed != root:
        raise SignatureFormatError(
            f"the signed manifest is inconsistent: its resources hash to {computed}, the subject says {root}"
        )
    return predicate_type, serialization, resources, root


def _serialization(value: object, max_entries: int) -> SignedSerialization:
    if not isinstance(value, dict):
        raise SignatureFormatError("the predicate has no serialization object")
    method, hash_type = value.get("method"), value.get("hash_type")
    if method not in ("files", "shards"):
        raise SignatureFormatError(
            f"serialization method {str(method)[:50]!r} is not files or shards"
        )
    if hash_type not in HASH_TYPES:
        raise SignatureFormatError(
            f"serialization hash_type {str(hash_type)[:50]!r} is not one of {', '.join(HASH_TYPES)}"
        )
    shard_size = value.get("shard_size")
    if method == "shards":
        # model_signing writes it through a protobuf Struct, so it may arrive as 1000.0.
        if isinstance(shard_size, float) and shard_size.is_integer():
            shard_size = int(shard_size)
        if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
            raise SignatureFormatError("serialization shard_size is not a positive integer")
    allow_symlinks = value.get("allow_symlinks", False)
    if not isinstance(allow_symlinks, bool):
        raise SignatureFormatError("serialization allow_symlinks is not a boolean")
    ignore = value.get("ignore_paths", [])
    if not isinstance(ignore, list):
        raise SignatureFormatError("serialization ignore_paths is not a list of paths")
    if len(ignore) > max_entries:
        raise SignatureFormatError(
            f"serialization ignore_paths lists {len(ignore)} paths, over the limit of {max_entries}"
        )
    return SignedSerialization(
        method=method,
        hash_type=hash_type,
        shard_size=shard_size if method == "shards" else None,
        allow_symlinks=allow_symlinks,
        ignore_paths=tuple(sorted({_relative_path(p, "an ignore path") for p in ignore})),
    )


def _resources(
    value: object, serialization: SignedSerialization, max_resources: int
) -> tuple[dict[str, tuple[str, str]], list[bytes]]:
    if not isinstance(value, list):
        raise SignatureFormatError("the predicate has no resources list")
    if len(value) > max_resources:
        raise SignatureFormatError(
            f"the predicate lists {len(value)} resources, over the limit of {max_resources}"
        )
    resources: dict[str, tuple[str, str]] = {}
    raw_digests: list[bytes] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise SignatureFormatError(f"resource {index} is not an object")
        name, algorithm, digest = item.get("name"), item.get("algorithm"), item.get("digest")
        if (
            not isinstance(name, str)
            or not isinstance(algorithm, str)
            or not isinstance(digest, str)
        ):
            raise SignatureFormatError(f"resource {index} lacks a string name, algorithm or digest")
        digest = digest.lower()
        if not _HEX.match(digest) or len(digest) % 2 or len(digest) > 256:
            raise SignatureFormatError(f"resource {name[:200]!r}: digest is not hexadecimal")
        if serialization.method == "shards":
            path, _, _ = split_shard(name)
            _relative_path(path, f"resource {name[:200]!r}")
        elif name != ".":
            _relative_path(name, "a resource name")
        if name in resources:
            raise SignatureFormatError(f"resource {name[:200]!r} is listed twice")
        resources[name] = (algorithm, digest)
        raw_digests.append(bytes.fromhex(digest))
    return resources, raw_digests


def _v02(subjects: list[Any], max_resources: int) -> dict[str, tuple[str, str]]:
    if len(subjects) > max_resources:
        raise SignatureFormatError(f"the statement lists {len(subjects)} subjects, over the limit")
    resources: dict[str, tuple[str, str]] = {}
    for index, subject in enumerate(subjects):
        digest = subject.get("digest") if isinstance(subject, dict) else None
        name = subject.get("name") if isinstance(subject, dict) else None
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(name, str) or not isinstance(sha, str) or not _is_hex(sha.lower(), 64):
            raise SignatureFormatError(f"subject {index} lacks a name and SHA-256 digest")
        resources[_relative_path(name, "a subject name")] = ("sha256", sha.lower())
    return resources


def split_shard(name: str) -> tuple[str, int, int]:
    """'path:start:end' -> (path, start, end); paths may hold ':' so the last two fields count."""
    path, sep1, rest = name.rpartition(":")
    path, sep2, start = path.rpartition(":")
    if not sep1 or not sep2 or not start.isdigit() or not rest.isdigit():
        raise SignatureFormatError(f"shard resource {name[:200]!r} is not path:start:end")
    return path, int(start), int(rest)


def _relative_path(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > 4096:
        raise SignatureFormatError(f"{what} is not a file path")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise SignatureFormatError(
            f"{what} {value[:200]!r} is not a relative path inside the model"
        )
    return str(path)


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and bool(_HEX.match(value))
