"""What format is this file, judged from its bytes and never from its name?"""

from __future__ import annotations

import codecs
import io
import re
import struct
import tarfile

from provscan.collectors.serialization.pickle.scan import walk_pickles
from provscan.report import FileFormat

_MAGICS: tuple[tuple[bytes, int, FileFormat], ...] = (
    (b"GGUF", 0, FileFormat.GGUF),
    (b"PK\x03\x04", 0, FileFormat.ZIP),
    (b"PK\x05\x06", 0, FileFormat.ZIP),  # empty archive: end of central directory only
    (b"\x89HDF\r\n\x1a\n", 0, FileFormat.HDF5),
    (b"\x93NUMPY", 0, FileFormat.NUMPY),
    (b"7z\xbc\xaf\x27\x1c", 0, FileFormat.SEVENZIP),
    (b"\x1f\x8b", 0, FileFormat.GZIP),
    (b"ustar", 257, FileFormat.TAR),
)

# C0 controls other than tab, newlines, form feed, vertical tab and escape: text has few.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f]")

# Opcodes that make a byte run a pickle rather than text that happens to parse.
_PICKLE_SIGNAL = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "STOP"}
# ONNX ModelProto begins with ir_version (field 1, varint), then one of its other
# fields: opset_import (8), producer_name (2), producer_version (3), domain (4),
# model_version (5), doc_string (6), graph (7).
_ONNX_SECOND_FIELD = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42}


def sniff(head: bytes, size: int) -> FileFormat:
    """Classify a file from its first bytes (`head`) and its total size."""
    if size == 0:
        return FileFormat.EMPTY
    for magic, offset, fmt in _MAGICS:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if is_tar_header(head):
        return FileFormat.TAR  # torch.load tries a zip, then a tar, then a pickle
    if _is_safetensors(head):
        return FileFormat.SAFETENSORS
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return FileFormat.PICKLE
    if _is_onnx(head):
        return FileFormat.ONNX
    if _is_text_pickle(head, size):
        return FileFormat.PICKLE
    text = _as_text(head, complete=len(head) >= size)
    if text is not None:
        stripped = text.lstrip("\ufeff \t\r\n")
        return FileFormat.JSON if stripped[:1] in ("{", "[") else FileFormat.TEXT
    return FileFormat.BINARY


def is_tar_header(head: bytes) -> bool:
    """Whether tarfile (and so torch.load's legacy path) accepts `head` as a first header:
    512 bytes, not all zero, with a matching checksum; no "ustar" magic is needed (pre-POSIX
    v7 tars, which torch's legacy loader still opens)."""
    if len(head) < 512 or not head[:512].strip(b"\0"):
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError, UnicodeDecodeError, OverflowError):
        return False
    return True


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    # A JSON object must open right after the length. A length that does not fit the
    # file still routes here, so the safetensors checks name the problem (truncation,
    # oversized header) instead of the file passing as opaque binary.
    return (
        header_len > 0
        and head[8:9] == b"{"
        and head[9:10] in (b'"', b"}", b" ", b"\n", b"\r", b"\t", b"")
    )


def _is_onnx(head: bytes) -> bool:
    if len(head) < 3 or head[0] != 0x08 or not 1 <= head[1] <= 0x7F:
        return False
    return head[2] in _ONNX_SECOND_FIELD


def _is_text_pickle(head: bytes, size: int) -> bool:
    """Protocol 0/1 pickles have no header: a head CPython's unpickler reads to an import,
    a call or a STOP is a pickle. Ordinary text fails within a byte or two (a space or '#'
    is not an opcode). Files sniffed otherwise are still walked from byte 0 by the scan.
    """
    walk = walk_pickles(io.BytesIO(head), limit=len(head), max_opcodes=100_000, sniffed=True)
    return walk.plausible > 0 or walk.pickles > 0


def _as_text(head: bytes, *, complete: bool) -> str | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        # final=False tolerates a multi-byte character cut at the end of the head.
        text = decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    controls = len(_CONTROL_CHARS.findall(text))
    return None if controls > len(text) // 100 else text
