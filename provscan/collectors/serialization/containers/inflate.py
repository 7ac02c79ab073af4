"""How much does this compressed stream expand to, read in bounded steps without holding it?"""

from __future__ import annotations

import bz2
import lzma
import string
import zlib
from enum import Enum

from provscan.collectors.serialization.containers.streams import Readable
from provscan.limits import Limits

# Compressed bytes taken (and output asked for) per step: what a step can cost is bounded.
CHUNK = 64 * 1024
# joblib < 0.9.3 wrote "ZF" + the hex length padded to len(hex(2**64)), then zlib data.
_ZF_HEADER = 2 + len(hex(2**64))
_HEX = set((string.hexdigits + "xX ").encode())


class Codec(str, Enum):
    """Compression wrappers that loaders (gzip, joblib, tarfile) undo transparently."""

    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZMA = "lzma"
    ZLIB = "zlib"
    JOBLIB_ZF = "joblib-zfile"


def codec_of(head: bytes) -> Codec | None:
    """The compression a stream's first bytes show (joblib's own prefixes), if any."""
    if head[:2] == b"\x1f\x8b":
        return Codec.GZIP
    if head[:3] == b"BZh":
        return Codec.BZIP2
    if head[:6] == b"\xfd7zXZ\x00":
        return Codec.XZ
    if head[:3] == b"\x5d\x00\x00":  # lzma "alone": properties byte 0x5d, then dictionary size
        return Codec.LZMA
    if head[:2] == b"ZF" and len(head) > _ZF_HEADER and set(head[2:_ZF_HEADER]) <= _HEX:
        return Codec.JOBLIB_ZF
    # RFC 1950: deflate method, window <= 32K, no preset dictionary, header check bits.
    zlib_like = len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7
    if zlib_like and not head[1] & 0x20 and (head[0] * 256 + head[1]) % 31 == 0:
        return Codec.ZLIB
    return None


class Engine:
    """One decompressor with a uniform bounded interface over zlib, bz2 and lzma."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._zlib: zlib._Decompress | None = None
        self._other: bz2.BZ2Decompressor | lzma.LZMADecompressor | None = None
        if codec is Codec.GZIP:
            self._zlib = zlib.decompressobj(wbits=31)
        elif codec in (Codec.ZLIB, Codec.JOBLIB_ZF):
            self._zlib = zlib.decompressobj(wbits=15)
        elif codec is Codec.BZIP2:
            self._other = bz2.BZ2Decompressor()
        else:
            self._other = lzma.LZMADecompressor(format=lzma.FORMAT_AUTO)
        self.pending = b""

    def step(self, max_length: int) -> bytes:
        if self._zlib is not None:
            out = self._zlib.decompress(self.pending, max_length)
            self.pending = self._zlib.unconsumed_tail
            return out
        assert self._other is not None
        out = self._other.decompress(self.pending, max_length)
        self.pending = b""
        return out

    @property
    def eof(self) -> bool:
        return self._zlib.eof if self._zlib is not None else bool(self._other and self._other.eof)

    @property
    def unused(self) -> bytes:
        engine = self._zlib if self._zlib is not None else self._other
        return engine.unused_data if engine is not None else b""

    @property
    def hungry(self) -> bool:
        if self._zlib is not None:
            return not self.pending
        return self._other is not None and self._other.needs_input


class Inflated:
    """A decompressing read-only stream that stops (returns EOF) at its bounds.

    It stops when its output passes the ratio bound (`bomb`) or the total bound
    (`too_large`), or when the data is corrupt (`error`). Callers check the flags after.
    """

    def __init__(
        self, raw: Readable, codec: Codec, compressed_size: int | None, limits: Limits
    ) -> None:
        self.raw = raw
        self.codec = codec
        self.compressed_size = compressed_size
        self.limits = limits
        self.consumed = 0
        self.produced = 0
        self.bomb = False
        self.too_large = False
        self.error: str | None = None
        self.done = False
        self._engine = Engine(codec)
        if codec is Codec.JOBLIB_ZF:
            header = self._take(_ZF_HEADER + 1)
            # joblib <= 0.8.4 padded one byte wider; zlib data never starts with a space.
            self._engine.pending = header[_ZF_HEADER:].lstrip(b" ")

    def _take(self, size: int) -> bytes:
        data = self.raw.read(size)
        self.consumed += len(data)
        return data

    def ratio_bound(self) -> int:
        basis = max(self.compressed_size or 0, self.consumed)
        floor = self.limits.decompression_ratio_floor
        return max(floor, self.limits.decompression_max_ratio * basis)

    def _next_stream(self) -> bool:
        """Concatenated gzip/bz2/xz streams read as one, as the stdlib readers do."""
        rest = self._engine.unused or self._take(CHUNK)
        if (
            self.codec in (Codec.ZLIB, Codec.JOBLIB_ZF, Codec.LZMA)
            or codec_of(rest) is not self.codec
        ):
            return False
        self._engine = Engine(self.codec)
        self._engine.pending = rest
        return True

    def _inflate(self, size: int) -> bytes:
        while not self.done:
            if self._engine.eof and not self._next_stream():
                self.done = True
                break
            if self._engine.hungry:
                chunk = self._take(CHUNK)
                if not chunk:
                    self.error = self.error or "compressed data ends early"
                    self.done = True
                    break
                self._engine.pending += chunk
            try:
                out = self._engine.step(size)
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                self.done = True
                break
            if out:
                return self._account(out)
        return b""

    def _account(self, out: bytes) -> bytes:
        self.produced += len(out)
        ratio_bound = self.ratio_bound()
        total_bound = self.limits.archive_max_total_bytes
        if self.produced > min(ratio_bound, total_bound):
            self.bomb = ratio_bound <= total_bound
            self.too_large = not self.bomb
            self.done = True
            keep = len(out) - (self.produced - min(ratio_bound, total_bound))
            self.produced -= len(out) - keep
            return out[:keep]
        return out

    def read(self, size: int = -1, /) -> bytes:
        parts: list[bytes] = []
        got = 0
        while (size < 0 or got < size) and not self.done:
            piece = self._inflate(CHUNK if size < 0 else min(CHUNK, size - got))
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def drain(self) -> None:
        """Decompress the rest, discarding it, so a bomb shows whatever the content was."""
        while not self.done and self._inflate(CHUNK):
            pass
