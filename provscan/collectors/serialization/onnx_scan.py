"""Does this ONNX model reach outside its directory for weights, or need native custom operators?

ONNX files are protobuf. The `onnx` package would parse the whole ModelProto into memory
(a model with embedded weights is up to 2 GB) and resolves external-data paths itself;
instead this walks the protobuf wire format by file offsets, descending only into the
messages that matter (graph, nodes, node attributes' subgraphs, initializers, functions,
opset imports) and seeking past everything else, so tensor bytes are never read.

Checked: every external-data `location` (onnx joins it to the model's directory; an
absolute path or `..` escapes it: CVE-2022-25882, CVE-2024-27318), that the referenced file
exists in the target, and operator domains outside the standard and ONNX Runtime sets
(a custom domain means a native custom-op library must be loaded to run the model).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import BinaryIO

from provscan.files import ScanFile, open_scanned
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, file_finding

# Domains whose operators ship with ONNX or ONNX Runtime itself.
KNOWN_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.ms.internal.nhwc",
        "org.pytorch.aten",
    }
)
MAX_DEPTH = 32  # nested subgraphs (If/Loop/Scan bodies) and message nesting
MAX_FIELDS = 5_000_000  # protobuf fields visited per file
MAX_STRING = 64 * 1024  # longest name/domain/location read

# field numbers, from onnx/onnx.proto
_MODEL_OPSET, _MODEL_GRAPH, _MODEL_FUNCTIONS, _MODEL_TRAINING = 8, 7, 25, 20
_TRAINING_GRAPHS = (1, 3)  # TrainingInfoProto.initialization, .algorithm
_GRAPH_NODE, _GRAPH_INIT, _GRAPH_SPARSE_INIT = 1, 5, 15
_NODE_OP_TYPE, _NODE_DOMAIN, _NODE_ATTRIBUTE = 4, 7, 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_TENSOR_NAME, _TENSOR_EXTERNAL = 8, 13
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_FUNC_NODE, _FUNC_OPSET, _FUNC_DOMAIN = 7, 9, 10
_OPSET_DOMAIN = 1


class OnnxError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass
class OnnxFacts:
    domains: dict[str, str] = field(default_factory=dict)  # domain -> an op_type using it
    external: list[tuple[str, str]] = field(default_factory=list)  # (tensor name, location)
    fields: int = 0


class _Reader:
    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        value, shift = 0, 0
        self.handle.seek(pos)
        chunk = self.handle.read(min(10, end - pos))
        for i, byte in enumerate(chunk):
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value, pos + i + 1
            shift += 7
        raise OnnxError("truncated or over-long varint", pos)

    def fields(self, start: int, end: int, facts: OnnxFacts) -> list[tuple[int, int, int, int]]:
        """(field number, wire type, value start, value end or varint value) for one message."""
        out, pos = [], start
        while pos < end:
            facts.fields += 1
            if facts.fields > MAX_FIELDS:
                raise OnnxError(f"more than {MAX_FIELDS} protobuf fields", pos)
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = self.varint(pos, end)
                out.append((number, wire, value, value))
            elif wire == 1 or wire == 5:
                pos += 8 if wire == 1 else 4
            elif wire == 2:
                length, pos = self.varint(pos, end)
                if length > end - pos:
                    raise OnnxError(
                        f"field {number} claims {length} bytes, only {end - pos} remain", pos
                    )
                out.append((number, wire, pos, pos + length))
                pos += length
            else:
                raise OnnxError(f"field {number} has unsupported wire type {wire}", pos)
        if pos != end:
            raise OnnxError("message runs past its end", pos)
        return out

    def string(self, start: int, end: int) -> str:
        self.handle.seek(start)
        data = self.handle.read(min(end - start, MAX_STRING))
        return data.decode("utf-8", errors="backslashreplace")


def read_onnx(handle: BinaryIO) -> OnnxFacts:
    """Walk a ModelProto; raises OnnxError when the protobuf structure is broken."""
    facts = OnnxFacts()
    size = handle.seek(0, 2)
    reader = _Reader(handle, size)
    for number, wire, start, end in reader.fields(0, size, facts):
        if wire != 2:
            continue
        if number == _MODEL_GRAPH:
            _graph(reader, start, end, facts, 1)
        elif number == _MODEL_OPSET:
            _opset(reader, start, end, facts, "opset_import")
        elif number == _MODEL_FUNCTIONS:
            _function(reader, start, end, facts, 1)
        elif number == _MODEL_TRAINING:
            for n, w, s, e in reader.fields(start, end, facts):
                if w == 2 and n in _TRAINING_GRAPHS:
                    _graph(reader, s, e, facts, 2)
    return facts


def _check_depth(depth: int, pos: int) -> None:
    if depth > MAX_DEPTH:
        raise OnnxError(f"subgraphs nested deeper than {MAX_DEPTH}", pos)


def _graph(reader: _Reader, start: int, end: int, facts: OnnxFacts, depth: int) -> None:
    _check_depth(depth, start)
    for number, wire, s, e in reader.fields(start, end, facts):
        if wire != 2:
            continue
        if number == _GRAPH_NODE:
            _node(reader, s, e, facts, depth)
        elif number == _GRAPH_INIT:
            _tensor(reader, s, e, facts)
        elif number == _GRAPH_SPARSE_INIT:
            _sparse(reader, s, e, facts)


def _node(reader: _Reader, start: int, end: int, facts: OnnxFacts, depth: int) -> None:
    op_type, domain = "", ""
    for number, wire, s, e in reader.fields(start, end, facts):
        if wire != 2:
            continue
        if number == _NODE_OP_TYPE:
            op_type = reader.string(s, e)
        elif number == _NODE_DOMAIN:
            domain = reader.string(s, e)
        elif number == _NODE_ATTRIBUTE:
            _attribute(reader, s, e, facts, depth)
    facts.domains.setdefault(domain, op_type)


def _attribute(reader: _Reader, start: int, end: int, facts: OnnxFacts, depth: int) -> None:
    for number, wire, s, e in reader.fields(start, end, facts):
        if wire != 2:
            continue
        if number in (_ATTR_G, _ATTR_GRAPHS):
            _graph(reader, s, e, facts, depth + 1)
        elif number in (_ATTR_T, _ATTR_TENSORS):
            _tensor(reader, s, e, facts)
        elif number in (_ATTR_SPARSE, _ATTR_SPARSES):
            _sparse(reader, s, e, facts)


def _sparse(reader: _Reader, start: int, end: int, facts: OnnxFacts) -> None:
    for number, wire, s, e in reader.fields(start, end, facts):
        if wire == 2 and number in (_SPARSE_VALUES, _SPARSE_INDICES):
            _tensor(reader, s, e, facts)


def _tensor(reader: _Reader, start: int, end: int, facts: OnnxFacts) -> None:
    name, location = "", None
    for number, wire, s, e in reader.fields(start, end, facts):
        if wire != 2:
            continue
        if number == _TENSOR_NAME:
            name = reader.string(s, e)
        elif number == _TENSOR_EXTERNAL:
            entry = {
                n: reader.string(es, ee) for n, w, es, ee in reader.fields(s, e, facts) if w == 2
            }
            if entry.get(1) == "location":
                location = entry.get(2, "")
    if location is not None:
        facts.external.append((name, location))


def _function(reader: _Reader, start: int, end: int, facts: OnnxFacts, depth: int) -> None:
    for number, wire, s, e in reader.fields(start, end, facts):
        if wire != 2:
            continue
        if number == _FUNC_NODE:
            _node(reader, s, e, facts, depth)
        elif number == _FUNC_OPSET:
            _opset(reader, s, e, facts, "function opset_import")
        elif number == _FUNC_DOMAIN:
            facts.domains.setdefault(reader.string(s, e), "(function)")


def _opset(reader: _Reader, start: int, end: int, facts: OnnxFacts, where: str) -> None:
    for number, wire, s, e in reader.fields(start, end, facts):
        if wire == 2 and number == _OPSET_DOMAIN:
            facts.domains.setdefault(reader.string(s, e), f"({where})")


def escapes(model_rel: str, location: str) -> bool:
    """Would onnx's `base_dir / location` leave the model's directory?"""
    if not location or location.startswith(("/", "\\")) or PurePosixPath(location).is_absolute():
        return True
    if "\\" in location or ":" in location.split("/")[0]:  # Windows separators, drive letters
        return True
    base = posixpath.dirname(model_rel)
    joined = posixpath.normpath(posixpath.join(base, location))
    return joined == ".." or joined.startswith("../")


def scan_onnx(
    file: ScanFile, limits: Limits, present: frozenset[str] = frozenset()
) -> list[Finding]:
    """Findings for one ONNX file; `present` holds the target's file names to resolve external data."""
    del limits  # the walk is bounded by this module's own constants
    try:
        with open_scanned(file) as handle:
            facts = read_onnx(handle)
    except OnnxError as exc:
        return [
            Finding(
                rule_id="SER-ONNX-MALFORMED",
                severity=Severity.HIGH,
                message=f"{file.rel}: ONNX protobuf is malformed at byte {exc.offset}: {exc}",
                location=Location(path=file.rel, offset=exc.offset),
            )
        ]
    findings: list[Finding] = []
    for name, location in facts.external:
        if escapes(file.rel, location):
            findings.append(
                file_finding(
                    "SER-ONNX-EXTERNAL-PATH",
                    Severity.CRITICAL,
                    file.rel,
                    f"{file.rel}: tensor {name!r} loads external data from {location!r}, outside the model directory",
                    tensor=name,
                    location=location,
                )
            )
        elif (
            present
            and posixpath.normpath(posixpath.join(posixpath.dirname(file.rel), location))
            not in present
        ):
            findings.append(
                file_finding(
                    "SER-ONNX-EXTERNAL-MISSING",
                    Severity.HIGH,
                    file.rel,
                    f"{file.rel}: tensor {name!r} needs external data {location!r}, which is not in the target",
                    tensor=name,
                    location=location,
                )
            )
    for domain, op_type in sorted(facts.domains.items()):
        if domain not in KNOWN_DOMAINS:
            findings.append(
                file_finding(
                    "SER-ONNX-CUSTOM-OP",
                    Severity.HIGH,
                    file.rel,
                    f"{file.rel}: operator domain {domain!r} (e.g. {op_type}) is not a standard ONNX or ONNX Runtime domain; running it loads a native custom-op library",
                    domain=domain,
                )
            )
    return findings
