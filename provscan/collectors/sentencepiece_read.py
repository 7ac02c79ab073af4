"""The pieces of a SentencePiece model (tokenizer.model), read by a small bounded parser.

A SentencePiece model is a protobuf `ModelProto` whose field 1 repeats `SentencePiece`
messages {1: piece (string), 2: score (float), 3: type (enum)}, as defined in
https://github.com/google/sentencepiece/blob/master/src/sentencepiece_model.proto .
provscan reads hostile files, so this module walks the wire format itself in pure Python,
with every length checked against what is left and bounded counts, rather than handing the
bytes to a native parser (the sentencepiece / protobuf C++ libraries) whose failures on
crafted input would take the scanner down with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from provscan.collectors.tokenizer_read import TOKENS_KEPT_MAX
from provscan.files import ScanFile, read_scanned

SENTENCEPIECE_READ_MAX = 32 * 1024 * 1024  # real models are under 5 MB
PIECES_MAX = 2_000_000  # real vocabularies have up to ~262k pieces
PIECE_BYTES_MAX = 4096  # one piece: real ones are a few dozen bytes
FIELDS_MAX = 16  # fields read in one SentencePiece message (it defines three)
# SentencePiece.Type: NORMAL=1, UNKNOWN=2, CONTROL=3, USER_DEFINED=4, UNUSED=5, BYTE=6.
SPECIAL_TYPES = frozenset({2, 3, 4})  # kept up to TOKENS_KEPT_MAX, as tokenizer_read does


class SentencePieceUnreadable(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class SentencePieces:
    tokens: frozenset[str]  # control / user-defined / unknown pieces, and asked-for pieces
    vocab_size: int | None  # pieces in the model (None: only part of the file was read)


class _Reader:
    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.pos, self.end = data, start, end

    def varint(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= self.end:
                raise SentencePieceUnreadable(f"a varint runs past its message at {self.pos}")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift >= 70:
                raise SentencePieceUnreadable(f"a varint longer than 10 bytes at {self.pos}")

    def skip(self, wire: int) -> None:
        if wire == 0:
            self.varint()
        elif wire in (1, 5):
            self.advance(8 if wire == 1 else 4)
        elif wire == 2:
            self.advance(self.varint())
        else:  # 3/4: groups, unused by ModelProto; 6/7: not protobuf at all
            raise SentencePieceUnreadable(f"wire type {wire} at {self.pos}")

    def advance(self, n: int) -> None:
        if n > self.end - self.pos:
            raise SentencePieceUnreadable(f"a {n}-byte field runs past its message at {self.pos}")
        self.pos += n


def read_sentencepiece(
    file: ScanFile, wanted: Iterable[str] = (), *, partial: bool = False
) -> SentencePieces:
    """The special pieces and piece count of a SentencePiece model file.

    Raises SentencePieceUnreadable when the file is too large, unreadable or not a
    ModelProto within the bounds. With `partial` (a stand-in holding only the file's first
    bytes) the pieces read before the parse stops are returned, with no piece count.
    """
    if file.size > SENTENCEPIECE_READ_MAX:
        raise SentencePieceUnreadable(f"larger than the {SENTENCEPIECE_READ_MAX:,}-byte bound")
    try:
        data = read_scanned(file, SENTENCEPIECE_READ_MAX)
    except OSError as exc:
        raise SentencePieceUnreadable(f"unreadable ({exc.strerror or exc})") from exc
    if len(data) > SENTENCEPIECE_READ_MAX:
        raise SentencePieceUnreadable(f"larger than the {SENTENCEPIECE_READ_MAX:,}-byte bound")
    return parse_sentencepiece(data, frozenset(wanted), partial=partial)


def parse_sentencepiece(
    data: bytes, wanted: frozenset[str] = frozenset(), *, partial: bool = False
) -> SentencePieces:
    kept: set[str] = set()
    try:
        count = _pieces(data, wanted, kept)
    except SentencePieceUnreadable:
        if not partial:
            raise
        return SentencePieces(tokens=frozenset(kept), vocab_size=None)
    return SentencePieces(tokens=frozenset(kept), vocab_size=count)


def _pieces(data: bytes, wanted: frozenset[str], kept: set[str]) -> int:
    top = _Reader(data, 0, len(data))
    count = 0
    while top.pos < top.end:
        tag = top.varint()
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise SentencePieceUnreadable(f"field number 0 at {top.pos}")
        if field != 1 or wire != 2:
            top.skip(wire)
            continue
        length = top.varint()
        start = top.pos
        top.advance(length)
        count += 1
        if count > PIECES_MAX:
            raise SentencePieceUnreadable(f"more than {PIECES_MAX:,} pieces")
        piece, kind = _piece(_Reader(data, start, start + length))
        if piece is not None and (
            piece in wanted or (kind in SPECIAL_TYPES and len(kept) < TOKENS_KEPT_MAX)
        ):
            kept.add(piece)
    if count == 0:
        raise SentencePieceUnreadable("no pieces: not a SentencePiece model")
    return count


def _piece(message: _Reader) -> tuple[str | None, int]:
    piece: str | None = None
    kind = 1  # NORMAL is the default
    for _ in range(FIELDS_MAX):
        if message.pos >= message.end:
            break
        tag = message.varint()
        field, wire = tag >> 3, tag & 7
        if field == 1 and wire == 2:
            length = message.varint()
            start = message.pos
            message.advance(length)
            if length <= PIECE_BYTES_MAX:
                piece = message.data[start : start + length].decode("utf-8", errors="replace")
        elif field == 3 and wire == 0:
            kind = message.varint()
        else:
            message.skip(wire)
    else:
        if message.pos < message.end:
            raise SentencePieceUnreadable(f"a piece with more than {FIELDS_MAX} fields")
    return piece, kind
