"""What files does the model hold, what is each one, and does any name lie about its content?"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from provscan.collectors.base import Collected
from provscan.collectors.serialization.sniff import sniff
from provscan.files import ScanFile, SniffedFile, open_scanned
from provscan.limits import Limits
from provscan.report import FileEntry, FileFormat, FileRole, Finding, Severity, file_finding

F = FileFormat
_PICKLE_CONTAINERS = {F.ZIP, F.PICKLE}
_TEXTUAL = {F.TEXT, F.JSON, F.EMPTY}

# The formats a loader will accept under each extension. A file whose content is
# none of these is a finding: routing by extension is how several scanner bypasses
# worked (CVE-2025-1889, CVE-2025-10155).
EXPECTED_FORMATS: dict[str, frozenset[FileFormat]] = {
    ".safetensors": frozenset({F.SAFETENSORS}),
    ".gguf": frozenset({F.GGUF}),
    ".onnx": frozenset({F.ONNX}),
    ".h5": frozenset({F.HDF5}),
    ".hdf5": frozenset({F.HDF5}),
    ".keras": frozenset({F.ZIP, F.HDF5}),
    ".npy": frozenset({F.NUMPY}),
    ".npz": frozenset({F.ZIP}),
    ".pt": frozenset(_PICKLE_CONTAINERS),
    ".pth": frozenset(_PICKLE_CONTAINERS),
    ".ckpt": frozenset(_PICKLE_CONTAINERS),
    ".bin": frozenset(_PICKLE_CONTAINERS | {F.BINARY}),
    ".pkl": frozenset({F.PICKLE, F.GZIP}),
    ".pickle": frozenset({F.PICKLE, F.GZIP}),
    ".joblib": frozenset({F.PICKLE, F.GZIP, F.BINARY}),
    ".json": frozenset({F.JSON}),
    ".zip": frozenset({F.ZIP}),
    ".7z": frozenset({F.SEVENZIP}),
    ".tar": frozenset({F.TAR}),
    ".gz": frozenset({F.GZIP}),
    ".tgz": frozenset({F.GZIP}),
    ".md": frozenset(_TEXTUAL),
    ".txt": frozenset(_TEXTUAL),
    ".py": frozenset(_TEXTUAL),
    ".yaml": frozenset(_TEXTUAL),
    ".yml": frozenset(_TEXTUAL),
    ".jinja": frozenset(_TEXTUAL),
    ".model": frozenset({F.BINARY}),  # sentencepiece protobuf
}

# Formats a loader reads as weights or serialized objects, whatever the file is named.
WEIGHT_FORMATS = {
    F.SAFETENSORS,
    F.GGUF,
    F.PICKLE,
    F.ZIP,
    F.ONNX,
    F.HDF5,
    F.NUMPY,
    F.SEVENZIP,
    F.TAR,
    F.GZIP,
}
_CONFIG_NAMES = {
    "config.json",
    "generation_config.json",
    "params.json",
    "preprocessor_config.json",
    "model.safetensors.index.json",
}
_TOKENIZER_NAMES = {
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
}
_LICENCE_STEMS = ("license", "licence", "notice", "use_policy", "usage_policy", "copying")
_PYTHON_SUFFIXES = {".py", ".pyc", ".pyo", ".pyw"}
_NATIVE_SUFFIXES = {".so", ".dll", ".dylib", ".exe", ".sh", ".bat", ".ps1"}


def collect_inventory(files: Sequence[ScanFile], limits: Limits) -> Collected[list[SniffedFile]]:
    """Sniff every file's format from its content and give it a role; flag code and lying names."""
    sniffed: list[SniffedFile] = []
    findings: list[Finding] = []
    for item in files:
        fmt = _sniff_file(item, limits, findings)
        sniffed.append(SniffedFile(file=item, format=fmt))
        findings.extend(_name_findings(item, fmt))
    return Collected(value=sniffed, findings=tuple(findings))


def file_entry(item: SniffedFile, sha256: str | None) -> FileEntry:
    return FileEntry(
        path=item.file.rel,
        size=item.file.size,
        format=item.format,
        role=role_of(item.file.rel, item.format),
        sha256=sha256,
        symlink=item.file.symlink,
        in_manifest=item.file.in_manifest,
        read=item.file.read,
        sha256_source="computed" if item.file.read == "whole" else "hub-recorded",
    )


def role_of(rel: str, fmt: FileFormat) -> FileRole:
    path = PurePosixPath(rel)
    if path.parts[:2] == (".cache", "huggingface"):
        return FileRole.OTHER  # huggingface_hub's download bookkeeping (hf download --local-dir)
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix in _PYTHON_SUFFIXES or suffix in _NATIVE_SUFFIXES:
        return FileRole.CODE
    if name == "readme.md" and len(path.parts) == 1:
        return FileRole.MODEL_CARD
    if name.startswith(_LICENCE_STEMS):
        return FileRole.LICENCE
    if name in _TOKENIZER_NAMES or suffix == ".tiktoken" or name.startswith("tokenizer"):
        return FileRole.TOKENIZER
    if name in _CONFIG_NAMES or name.endswith("config.json"):
        return FileRole.CONFIG
    if fmt in WEIGHT_FORMATS:
        return FileRole.WEIGHTS
    return FileRole.OTHER


def _sniff_file(item: ScanFile, limits: Limits, findings: list[Finding]) -> FileFormat:
    try:
        with open_scanned(item) as handle:
            head = handle.read(limits.sniff_bytes)
    except OSError as exc:
        findings.append(
            file_finding(
                "INV-UNREADABLE",
                Severity.CRITICAL,
                item.rel,
                f"{item.rel}: cannot be read ({exc.strerror or exc}); its content was not checked",
            )
        )
        return FileFormat.UNREADABLE
    return sniff(head, item.size)


def _name_findings(item: ScanFile, fmt: FileFormat) -> list[Finding]:
    out: list[Finding] = []
    suffix = PurePosixPath(item.rel).suffix.lower()
    if suffix in _PYTHON_SUFFIXES:
        out.append(
            file_finding(
                "INV-PYTHON-CODE",
                Severity.HIGH,
                item.rel,
                f"{item.rel}: Python code in a model repository; loading with trust_remote_code=True would run it",
            )
        )
    elif suffix in _NATIVE_SUFFIXES:
        out.append(
            file_finding(
                "INV-NATIVE-CODE",
                Severity.HIGH,
                item.rel,
                f"{item.rel}: executable code or script in a model repository",
            )
        )
    expected = EXPECTED_FORMATS.get(suffix)
    if expected is not None and fmt is not FileFormat.UNREADABLE and fmt not in expected:
        out.append(
            file_finding(
                "INV-FORMAT-MISMATCH",
                Severity.HIGH,
                item.rel,
                f"{item.rel}: the name says {suffix} but the content is {fmt.value}",
                **{
                    "extension": suffix,
                    "content_format": fmt.value,
                    "expected": sorted(f.value for f in expected),
                },
            )
        )
    return out
