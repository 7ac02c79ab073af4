"""Does this Keras v3 `.keras` archive (or a Keras model saved as a folder) carry code in its config?

A `.keras` file is a zip holding `config.json` (the architecture), `metadata.json` and
`model.weights.h5` (or `model.weights.npz`). Keras 3's saving_lib opens `config.json` by exact
name with Python's zipfile (which, when a name is stored twice, returns the last copy) and
builds the whole model from it before it even looks for the weights, so an archive holding
only `config.json` still runs what its config names. The config is read as JSON (bounded),
never deserialised by Keras; every copy of `config.json` in the archive is checked.

What in a config runs code, and how, is config.py.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import PurePosixPath

from provscan.collectors.serialization.keras.config import keras_config_findings
from provscan.files import ScanFile, open_scanned, read_capped, read_scanned
from provscan.limits import Limits
from provscan.parsing import (
    HostileData,
    hostile_number_findings,
    parse_json_as_loaded,
)
from provscan.report import Finding, Location, Severity

# Every member with this base name is read from an archive that looks like a Keras archive.
CONFIG_NAME = "config.json"
KERAS_MARKERS = frozenset({"metadata.json", "model.weights.h5", "model.weights.npz"})
MAX_CONFIG_MEMBERS = 16
# What zipfile raises on a member it will not read: a bad CRC, encryption, an unknown
# method, and data that ends early (EOFError) or does not inflate (zlib.error).
_UNREADABLE_MEMBER = (
    zipfile.BadZipFile,
    OSError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    EOFError,
    zlib.error,
)


def _config_members(infos: list[zipfile.ZipInfo], keras_like: bool) -> list[zipfile.ZipInfo]:
    """The config.json members to check: every one in a Keras-looking archive (copies and
    subfolders too: another reader, or an extracted copy, may pick a different one), else the
    root config.json that Keras would read if the zip were renamed .keras."""
    if keras_like:
        return [i for i in infos if PurePosixPath(i.filename).name == CONFIG_NAME]
    return [i for i in infos if i.filename == CONFIG_NAME]


def scan_keras_zip(file: ScanFile, limits: Limits) -> list[Finding]:
    """Check every config.json of a zip that is (or could be loaded as) a `.keras` archive."""
    try:
        with open_scanned(file) as handle, zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
            names = {PurePosixPath(i.filename).name for i in infos}
            keras_like = file.rel.lower().endswith(".keras") or bool(names & KERAS_MARKERS)
            members = _config_members(infos, keras_like)
            if len(members) > MAX_CONFIG_MEMBERS:
                problem = f"{len(members)} config.json members, over {MAX_CONFIG_MEMBERS}"
                return [_malformed(file.rel, problem)]
            copies = sum(1 for i in members if i.filename == CONFIG_NAME)
            keras_like = keras_like or copies > 1
            findings: list[Finding] = []
            seen = 0
            for info in members:
                note = ""
                if info.filename == CONFIG_NAME and copies > 1:
                    seen += 1
                    read = " (the one zipfile, and so Keras, reads)" if seen == copies else ""
                    note = f", copy {seen} of {copies}{read}"
                findings.extend(_check_member(archive, info, file.rel, limits, keras_like, note))
            return findings
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError):
        return []  # the zip scanner reports archives it cannot read


def _check_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    rel: str,
    limits: Limits,
    keras_like: bool,
    note: str,
) -> list[Finding]:
    if info.file_size > limits.json_file_max:
        return [
            _malformed(
                rel,
                f"{info.filename} is {info.file_size} bytes, over the "
                f"{limits.json_file_max}-byte limit",
                info.filename,
            )
        ]
    try:
        with archive.open(info) as stream:
            raw, inflates_past = read_capped(stream, limits.json_file_max)
    except _UNREADABLE_MEMBER as exc:
        if not keras_like:
            return []  # the zip scanner reports members it cannot read
        # Keras cannot load it either, but the zip scanner may not run (a .keras whose zip
        # starts after other bytes): the config is reported unchecked, as broken JSON is.
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        problem = f"{info.filename} cannot be read ({why})"
        return [_malformed(rel, problem, info.filename)]
    if inflates_past:
        return [_malformed(rel, f"{info.filename} inflates past the size limit", info.filename)]
    try:
        # bytes: UTF-8, UTF-16 or UTF-32, as Keras' json.loads reads; a hostile number is
        # reported and read as Keras reads it, so that it hides nothing from the walk.
        config, problems = parse_json_as_loaded(raw)
    except HostileData as exc:
        return [_malformed(rel, f"{info.filename} {exc.problem}", info.filename)]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if not keras_like:
            return []
        return [_malformed(rel, f"{info.filename} is not valid JSON ({exc})", info.filename)]
    except RecursionError:
        return [_malformed(rel, f"{info.filename} nests too deeply to parse", info.filename)]
    numbers = hostile_number_findings(rel, problems, info.filename)
    try:
        return numbers + keras_config_findings(config, rel, info.filename, note)
    except ValueError as exc:
        return [*numbers, _malformed(rel, str(exc), info.filename)]


def scan_keras_folder_config(file: ScanFile, limits: Limits) -> list[Finding]:
    """The config.json of a Keras model saved as a folder (beside model.weights.h5): Keras 3
    loads a directory as it loads the archive's members."""
    if file.size > limits.json_file_max:
        return [_malformed(file.rel, f"over the {limits.json_file_max}-byte limit", "")]
    try:
        config, problems = parse_json_as_loaded(read_scanned(file, limits.json_file_max))
    except HostileData as exc:
        return [_malformed(file.rel, exc.problem, "")]
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []  # not JSON: not a Keras config, and the inventory reports broken JSON
    except RecursionError:
        return [_malformed(file.rel, "nests too deeply to parse", "")]
    numbers = hostile_number_findings(file.rel, problems)
    try:
        return numbers + keras_config_findings(config, file.rel, "")
    except ValueError as exc:
        return [*numbers, _malformed(file.rel, str(exc), "")]


def _malformed(rel: str, problem: str, member: str = CONFIG_NAME) -> Finding:
    return Finding(
        rule_id="SER-KERAS-MALFORMED",
        severity=Severity.HIGH,
        message=f"{rel}: Keras {'archive' if member else 'config'} cannot be checked: {problem}",
        location=Location(path=rel, member=member or None),
    )
