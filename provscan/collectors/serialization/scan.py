"""Can loading any of these files run code or hide a payload? Routes files to format scanners."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from provscan.collectors.base import Collected, isolated
from provscan.collectors.serialization.pickle.scan import scan_as_pickle, scan_pickle_file
from provscan.files import ScanFile, SniffedFile
from provscan.limits import Limits
from provscan.report import FileFormat, Finding, Severity, file_finding

FormatScanner = Callable[[ScanFile, Limits], list[Finding]]


# Each format's scanner is imported on the first file of that format, so a check of a
# safetensors model loads none of the zip, tar, GGUF, Keras, ONNX or chat-template readers
# (about 0.2 s of every process's start-up). The imports are real ones: the import graph,
# and the layer contract on it, see each edge. The pickle walker is imported above: every
# file is walked as a pickle.
def scan_zip(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.containers.scan import scan_zip

    return scan_zip(file, limits)


def scan_tar(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.containers.scan import scan_tar

    return scan_tar(file, limits)


def scan_gzip(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.containers.scan import scan_gzip

    return scan_gzip(file, limits)


def scan_7z(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.containers.scan import scan_7z

    return scan_7z(file, limits)


def scan_compressed(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.containers.scan import scan_compressed

    return scan_compressed(file, limits)


def scan_safetensors(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.safetensors.scan import scan_safetensors

    return scan_safetensors(file, limits)


def scan_numpy(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.numpy_scan import scan_numpy

    return scan_numpy(file, limits)


def scan_gguf(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.gguf.scan import scan_gguf

    return scan_gguf(file, limits)


def scan_tokenizer_config_template(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.gguf.scan import scan_tokenizer_config_template

    return scan_tokenizer_config_template(file, limits)


def scan_hdf5(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.keras.hdf5 import scan_hdf5

    return scan_hdf5(file, limits)


def scan_keras_zip(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.keras.scan import scan_keras_zip

    return scan_keras_zip(file, limits)


def scan_keras_folder_config(file: ScanFile, limits: Limits) -> list[Finding]:
    from provscan.collectors.serialization.keras.scan import scan_keras_folder_config

    return scan_keras_folder_config(file, limits)


def scan_onnx(file: ScanFile, limits: Limits, present: frozenset[str]) -> list[Finding]:
    from provscan.collectors.serialization.onnx_scan import scan_onnx

    return scan_onnx(file, limits, present)


# Routed by the format the content shows, never by the file name.
SCANNERS: dict[FileFormat, FormatScanner] = {
    FileFormat.PICKLE: scan_pickle_file,
    FileFormat.ZIP: scan_zip,
    FileFormat.SAFETENSORS: scan_safetensors,
    FileFormat.NUMPY: scan_numpy,
    FileFormat.GGUF: scan_gguf,
    FileFormat.TAR: scan_tar,
    FileFormat.GZIP: scan_gzip,
    FileFormat.SEVENZIP: scan_7z,
    FileFormat.HDF5: scan_hdf5,
    # zlib, bz2, xz and joblib's old "ZF" streams have no magic the sniffer trusts; this
    # reads 64 bytes and returns nothing when the content is not compressed.
    FileFormat.BINARY: scan_compressed,
}
# Scanned, but not by a scanner of the file alone: ONNX external data is resolved against
# the other files of the target (scan_serialization binds them).
NEEDS_TARGET = frozenset({FileFormat.ONNX})
# Formats no format scanner reads. Each is still walked as a pickle from byte 0 (a pickle
# loader reads any bytes), except EMPTY; a chat template file is linted by its name.
NO_FORMAT_SCANNER = frozenset(
    {
        FileFormat.JSON,  # data: loading it runs nothing; templates go by name (TEMPLATE_FILES)
        FileFormat.TEXT,  # likewise
        FileFormat.EMPTY,  # no bytes, nothing to load
        FileFormat.UNREADABLE,  # the inventory could not read it (its finding says so)
    }
)


# Files whose chat template a runtime renders with Jinja (transformers, vLLM, SGLang):
# routed by name, and only when their content is JSON or text.
TEMPLATE_FILES = frozenset({"tokenizer_config.json", "chat_template.json", "chat_template.jinja"})
_TEMPLATE_FORMATS = frozenset({FileFormat.JSON, FileFormat.TEXT})
# Walked as a pickle already (PICKLE), or holding no bytes (EMPTY).
_NOT_PICKLE_WALKED = frozenset({FileFormat.PICKLE, FileFormat.EMPTY})


def _beside(folder: str, name: str, present: frozenset[str]) -> bool:
    return (f"{folder}/{name}" if folder else name) in present


def _unreadable(file: ScanFile, exc: BaseException) -> list[Finding]:
    error = f"{type(exc).__name__}: {exc}"
    finding = file_finding(
        "SER-UNREADABLE",
        Severity.HIGH,
        file.rel,
        f"{file.rel}: could not be scanned for serialization safety: {error}",
        error=error[:500],
    )
    return [finding]


def _not_downloaded(sniffed: SniffedFile) -> Finding:
    """A file whose format needs its content scanned, which a metadata-only scan did not fetch."""
    file, fmt = sniffed.file, sniffed.format.value
    # Opaque binary loads as data unless it is a compressed pickle; every other format here
    # can carry code or a payload (pickle, a zip of pickles, a GGUF chat template, ...).
    severity = Severity.MEDIUM if sniffed.format is FileFormat.BINARY else Severity.HIGH
    return file_finding(
        "SER-NOT-DOWNLOADED",
        severity,
        file.rel,
        f"{file.rel}: {fmt} content ({file.size:,} bytes) was not downloaded, so it was not "
        f"scanned: what loading it does is unknown; scan with --download to check it",
        format=fmt,
        size=file.size,
    )


def scan_serialization(files: Sequence[SniffedFile], limits: Limits) -> Collected[None]:
    """Scan every pickle, zip and safetensors file; one file's failure is a finding, not a crash."""
    findings: list[Finding] = []
    present = frozenset(f.file.rel for f in files)
    scanners: dict[FileFormat, tuple[FormatScanner, ...]] = {
        **{fmt: (scanner,) for fmt, scanner in SCANNERS.items()},
        # ONNX external data is resolved against the other files of the target.
        FileFormat.ONNX: (lambda file, lim: scan_onnx(file, lim, present),),
        # A Keras v3 archive is a zip whose config.json is code by another name.
        FileFormat.ZIP: (scan_zip, scan_keras_zip),
    }
    for sniffed in files:
        chosen = scanners.get(sniffed.format, ())
        name = sniffed.file.rel.rsplit("/", 1)[-1]
        if name in TEMPLATE_FILES and sniffed.format in _TEMPLATE_FORMATS:
            chosen = (scan_tokenizer_config_template,)
        folder = sniffed.file.rel.rpartition("/")[0]
        if name == "config.json" and _beside(folder, "model.weights.h5", present):
            chosen = (*chosen, scan_keras_folder_config)  # a Keras model saved as a folder
        if name.endswith(".keras") and sniffed.format is not FileFormat.ZIP:
            # Keras opens any .keras file whose tail is a zip, whatever bytes come first.
            chosen = (*chosen, scan_keras_zip)
        if sniffed.format not in _NOT_PICKLE_WALKED:
            # Whatever the bytes also are, a pickle loader reads them from byte 0.
            chosen = (*chosen, partial(scan_as_pickle, fmt=sniffed.format.value))
        if not chosen:
            continue
        if sniffed.file.read != "whole" and sniffed.format is not FileFormat.SAFETENSORS:
            # Not downloaded (hf:// metadata-only): only a safetensors header can be judged
            # from what was fetched (all of it was, whenever its length was plausible).
            findings.append(_not_downloaded(sniffed))
            continue
        # Each scanner of a file on its own: a zip's critical pickle survives its Keras check.
        failures: set[str] = set()
        for scanner in chosen:
            for finding in isolated(
                partial(scanner, sniffed.file, limits), partial(_unreadable, sniffed.file)
            ):
                if finding.rule_id == "SER-UNREADABLE":
                    if finding.message in failures:
                        continue  # the same failure (a vanished file) from another reader
                    failures.add(finding.message)
                findings.append(finding)
    # Never "skipped" when nothing applies (a GGUF-only model): the default policy denies a
    # skipped required step, and there was nothing unsafe to find.
    return Collected(value=None, findings=tuple(findings))
