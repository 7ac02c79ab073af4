"""Which compression wraps this stream, by every signature a loader accepts, and what is inside?

Loaders that decompress transparently, and the first bytes they go by:

- joblib.load (joblib 1.x, joblib/numpy_pickle_utils.py `_detect_compressor`, prefixes in
  joblib/compressor.py): "ZF" (its pre-0.10 zfile, numpy_pickle_compat.py), then zlib b"\\x78",
  gzip b"\\x1f\\x8b", bz2 b"BZ", lzma b"\\x5d\\x00", xz b"\\xfd7zXZ", lz4 b"\\x04\\x22\\x4d\\x18".
  lzma streams are read with `lzma.LZMAFile` (FORMAT_AUTO), zlib with wbits=15, lz4 with
  `lz4.frame` (https://github.com/joblib/joblib/blob/1.4.2/joblib/compressor.py).
- Python's zlib/gzip/bz2/lzma: any RFC 1950 header (CMF method 8, window up to 32 KiB, FLG
  check bits; not only 78 9c), gzip method 8, "BZh1".."BZh9", xz magic, and lzma "alone"
  headers with any valid properties byte.

`codec_of` in inflate.py names the classic signatures; `detect` adds what it leaves out: lzma
headers whose dictionary size does not start 00 00 (joblib's b"\\x5d\\x00" prefix with a 4 KiB
dictionary is `5d 00 10 00 00`) or whose properties are not the default 0x5d, and lz4
frames. lz4 is decompressed with python-lz4 when installed, else by the bounded pure-Python
decoder below (LZ4 frame format 1.6.x, https://github.com/lz4/lz4/blob/v1.9.4/doc/lz4_Frame_format.md
and lz4_Block_format.md).
"""

from __future__ import annotations

import importlib
import struct
from dataclasses import dataclass
from typing import Any

from provscan.collectors.serialization.containers.inflate import (
    CHUNK,
    Codec,
    Engine,
    Inflated,
    codec_of,
)
from provscan.collectors.serialization.containers.streams import Readable
from provscan.limits import Limits

LZ4_MAGIC = b"\x04\x22\x4d\x18"
_WINDOW = 64 * 1024
_BLOCK_SIZES = {4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024}


@dataclass(frozen=True)
class Detected:
    """A compression signature: `codec` for the inflate.py codecs, None for lz4."""

    label: str
    codec: Codec | None
    # A header that random bytes match now and then (zlib's two bytes, lzma's thirteen):
    # when nothing at all decompresses, the stream was never compressed.
    weak: bool = False


def _lzma_alone(head: bytes) -> bool:
    """An lzma "alone" header liblzma's auto decoder (LZMAFile, lzma.decompress) accepts:
    lc/lp/pb in range with lc + lp <= 4, a dictionary of 2^n or 2^n + 2^(n-1) bytes, and an
    uncompressed size that is unknown (all ones) or under 2^38 (xz-utils 5.x,
    src/liblzma/common/alone_decoder.c)."""
    if len(head) < 13 or head[0] > (4 * 5 + 4) * 9 + 8:
        return False
    props = head[0]
    lc, lp = props % 9, (props // 9) % 5
    if lc + lp > 4:
        return False
    (dictionary,) = struct.unpack_from("<L", head, 1)
    if head[:2] != b"\x5d\x00" and dictionary < 4096:
        # Not joblib's prefix: only what encoders write (4 KiB and up), so that runs of
        # zero bytes in raw tensor data do not pass for an lzma header.
        return False
    if dictionary != 0xFFFFFFFF:
        # liblzma alone_decoder.c, picky mode, in 32-bit arithmetic.
        rounded = (dictionary - 1) & 0xFFFFFFFF
        for shift in (2, 3, 4, 8, 16):
            rounded |= rounded >> shift
        if (rounded + 1) & 0xFFFFFFFF != dictionary:
            return False
    (size,) = struct.unpack_from("<Q", head, 5)
    return bool(size == 2**64 - 1 or size < 2**38)


def detect(head: bytes) -> Detected | None:
    """The compression a stream's first bytes show, by any signature a loader accepts."""
    codec = codec_of(head)
    if codec is not None:
        return Detected(codec.value, codec, weak=codec in (Codec.ZLIB, Codec.LZMA))
    if head[:4] == LZ4_MAGIC:
        return Detected("lz4", None)
    if _lzma_alone(head):
        return Detected(Codec.LZMA.value, Codec.LZMA, weak=True)
    return None


def _lz4_module() -> Any:
    try:
        return importlib.import_module("lz4.frame")
    except ImportError:
        return None


class _PurePythonLZ4:
    """One LZ4 frame, decoded block by block (at most 4 MiB of output held at a time)."""

    def __init__(self) -> None:
        self.pending = b""
        self.ended = False
        self.needs_input = True
        self._out = bytearray()
        self._header: dict[str, int] | None = None
        self._window = b""

    @property
    def eof(self) -> bool:
        """The end mark was read and every byte before it handed out."""
        return self.ended and not self._out

    @property
    def unused_data(self) -> bytes:
        return self.pending if self.ended else b""

    def _parse_header(self) -> bool:
        data = self.pending
        if len(data) < 7:
            return False
        if data[:4] != LZ4_MAGIC:
            raise ValueError("not an lz4 frame")
        flags, descriptor = data[4], data[5]
        if flags >> 6 != 1 or flags & 0x02 or descriptor & 0x8F:
            raise ValueError("unsupported lz4 frame descriptor")
        if flags & 0x01:
            raise ValueError("lz4 frame needs a dictionary")
        length = 7 + (8 if flags & 0x08 else 0)
        if len(data) < length:
            return False
        self._header = {
            "independent": flags & 0x20,
            "block_checksum": flags & 0x10,
            "content_checksum": flags & 0x04,
            "max_block": _BLOCK_SIZES.get(descriptor >> 4, 0),
        }
        if not self._header["max_block"]:
            raise ValueError("lz4 block size code is invalid")
        self.pending = data[length:]
        return True

    def _next_block(self) -> bool:
        assert self._header is not None
        data = self.pending
        if len(data) < 4:
            return False
        (word,) = struct.unpack_from("<L", data)
        if word == 0:
            tail = 4 + (4 if self._header["content_checksum"] else 0)
            if len(data) < tail:
                return False
            self.pending = data[tail:]
            self.ended = True
            return True
        size, stored = word & 0x7FFFFFFF, bool(word & 0x80000000)
        if size > self._header["max_block"]:
            raise ValueError("lz4 block is larger than the frame allows")
        whole = 4 + size + (4 if self._header["block_checksum"] else 0)
        if len(data) < whole:
            return False
        block = data[4 : 4 + size]
        self.pending = data[whole:]
        if stored:
            produced = bytes(block)
        else:
            produced = decode_block(block, self._window, self._header["max_block"])
        self._out += produced
        if not self._header["independent"]:
            self._window = (self._window + produced)[-_WINDOW:]
        return True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        self.pending += data
        while len(self._out) < max_length and not self.ended:
            advanced = self._parse_header() if self._header is None else self._next_block()
            if not advanced:
                break
        self.needs_input = not self.ended and len(self._out) < max_length
        out = bytes(self._out[:max_length])
        del self._out[:max_length]
        if self._out:
            self.needs_input = False
        return out


def decode_block(block: bytes, window: bytes, limit: int) -> bytes:
    """LZ4 block format: sequences of literals and (offset, length) matches into the output,
    which may reach back into `window` (the previous blocks of a linked frame)."""
    out = bytearray(window)
    base = len(out)
    at, end = 0, len(block)
    while at < end:
        token = block[at]
        at += 1
        literals = token >> 4
        if literals == 15:
            while True:
                if at >= end:
                    raise ValueError("lz4 literal length runs past the block")
                extra = block[at]
                at += 1
                literals += extra
                if extra != 255:
                    break
        if at + literals > end:
            raise ValueError("lz4 literals run past the block")
        out += block[at : at + literals]
        at += literals
        if at == end:
            break  # the last sequence has literals only
        if at + 2 > end:
            raise ValueError("lz4 match offset runs past the block")
        offset = block[at] | block[at + 1] << 8
        at += 2
        length = (token & 0x0F) + 4
        if token & 0x0F == 15:
            while True:
                if at >= end:
                    raise ValueError("lz4 match length runs past the block")
                extra = block[at]
                at += 1
                length += extra
                if extra != 255:
                    break
        if offset == 0 or offset > len(out):
            raise ValueError("lz4 match offset points before the data")
        if len(out) - base + length > limit:
            raise ValueError("lz4 block decodes past its maximum size")
        start = len(out) - offset
        if offset >= length:
            out += out[start : start + length]
        else:
            pattern = bytes(out[start:])
            out += (pattern * (length // offset + 1))[:length]
    if len(out) - base > limit:
        raise ValueError("lz4 block decodes past its maximum size")
    return bytes(out[base:])


class _LZ4Engine(Engine):
    """inflate.py's engine interface over one lz4 frame (python-lz4, or the decoder above)."""

    def __init__(self) -> None:  # noqa: D107 - no zlib/bz2/lzma state to set up
        module = _lz4_module()
        self.codec = Codec.LZMA  # unused: Inflated only asks the engine, never the codec
        self._frame: Any = module.LZ4FrameDecompressor() if module is not None else _PurePythonLZ4()
        self.pending = b""

    def step(self, max_length: int) -> bytes:
        data, self.pending = self.pending, b""
        out: bytes = self._frame.decompress(data, max_length)
        return out

    @property
    def eof(self) -> bool:
        return bool(self._frame.eof)

    @property
    def unused(self) -> bytes:
        return bytes(self._frame.unused_data)

    @property
    def hungry(self) -> bool:
        return not self.pending and bool(self._frame.needs_input)


class LZ4Inflated(Inflated):
    """Inflated's bounds (ratio, total, corrupt data) over lz4 frames, read back to back as
    lz4.frame's reader does."""

    def __init__(self, raw: Readable, compressed_size: int | None, limits: Limits) -> None:
        super().__init__(raw, Codec.XZ, compressed_size, limits)
        self._engine = _LZ4Engine()

    def _next_stream(self) -> bool:
        rest = self._engine.unused or self._take(CHUNK)
        if rest[:4] != LZ4_MAGIC:
            return False
        self._engine = _LZ4Engine()
        self._engine.pending = rest
        return True


def inflater(
    stream: Readable, detected: Detected, compressed_size: int | None, limits: Limits
) -> Inflated:
    """A bounded decompressing reader for what `detect` found."""
    if detected.codec is None:
        return LZ4Inflated(stream, compressed_size, limits)
    return Inflated(stream, detected.codec, compressed_size, limits)
