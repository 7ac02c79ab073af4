"""How are a pickle's bytes read, as _pickle.c or pickle.py reads them, opcode by opcode?

The opcode loop, frames, lines, bytes payloads, numbers and the memo; what each opcode
imports, calls or builds is walk.py's `Walker`, which subclasses `Reading`.
"""

from __future__ import annotations

import pickle
import sys
from struct import unpack
from typing import Any, ClassVar

from provscan.collectors.serialization.pickle.cparse import c_float, c_index, c_int, c_long
from provscan.collectors.serialization.pickle.values import PickleWalk, Reader, Stream

# torch's legacy (non-zip) format: a pickle of this number, then the protocol, sys info,
# the object and the storage keys, followed by raw storage bytes that must not be parsed.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PICKLES = 5
# The values a walk may hold alive (Python memory blocks, sys.getallocatedblocks): a pickle's
# bytes bound its strings, but not the small objects ten million opcodes can build; checked every
# 2**16 opcodes. 2.5 million small objects are some 180 MB.
MAX_LIVE_BLOCKS = 2_500_000
_CHECK_EVERY = 1 << 16
# A memo index whose slot table _pickle.c cannot allocate (it grows the table to 2x the index).
C_MEMO_LIMIT = 1 << 26
# Opcode names as findings give them (load_stack_global -> STACK_GLOBAL).
_NAMES = {
    code: handler.__name__[5:].upper() for code, handler in pickle._Unpickler.dispatch.items()
}


class _Stop(Exception):
    pass


class Reading(pickle._Unpickler):
    """One reader over one stream: reads each opcode's bytes the way `reader` does."""

    # Each opcode's handler; Walker's copy holds its own handlers (walk.py).
    dispatch: ClassVar[dict[int, Any]]
    memo: dict[int, Any]

    def __init__(
        self,
        stream: Stream,
        walk: PickleWalk,
        reader: Reader,
        *,
        limit: int,
        max_opcodes: int,
        joblib: bool = True,
    ) -> None:
        super().__init__(stream)
        self.stream = stream
        self.walk = walk
        self.reader = reader
        self.limit = limit
        self.max_opcodes = max_opcodes
        self.joblib = joblib and reader is Reader.PY
        self.c = reader is not Reader.PY
        self.frame_end: int | None = None  # where the current frame's bytes end (_pickle.c)
        self.pos = stream.tell()
        self.opcode = ""
        self.torch_magic = False
        self.halted = False  # the stream can no longer be followed
        self.value: Any = None  # what the pickle built, once STOP is reached

    # ------------------------------------------------------------------ the loop
    def offset(self) -> int:
        """The logical offset of the next opcode (pickle.py reads frames ahead)."""
        unframer = getattr(self, "_unframer", None)
        frame = unframer.current_frame if unframer is not None else None
        here = self.stream.tell()
        if frame is None:
            return here
        return int(here - (len(frame.getbuffer()) - frame.tell()))

    def run(self) -> bool:
        """Unpickle one pickle; True when STOP was reached. Errors are recorded, not raised."""
        self.metastack: list[Any] = []
        self.stack: list[Any] = []
        self.append = self.stack.append
        self.proto = 0
        if not self.c:
            self._unframer = pickle._Unframer(self._file_read, self._file_readline)  # type: ignore[attr-defined]
            self.read = self._unframer.read
            self.readinto = self._unframer.readinto
            self.readline = self._unframer.readline
        else:
            self.read = self._c_read
            self.readline = self._c_readline
        try:
            self._loop()
        except _Stop:
            return True
        except RecursionError:
            self.fail("nesting too deep to follow")
        except Exception as exc:  # noqa: BLE001 - the unpickler's own errors on hostile bytes
            self.fail(str(exc) or type(exc).__name__)
        finally:
            self._release()
        return False

    def _release(self) -> None:
        """Drop every value now: the bound methods stored on self make a reference cycle, and
        the next reading would otherwise run while this one's values wait for the collector."""
        self.stack, self.metastack, self.memo = [], [], {}
        for name in ("read", "readline", "readinto", "append", "_unframer"):
            self.__dict__.pop(name, None)

    def _loop(self) -> None:
        walk, dispatch, names, read = self.walk, self.dispatch, _NAMES, self.read
        position = self.stream.tell if self.c else self.offset
        count, most = walk.opcodes, self.max_opcodes
        # sys.getallocatedblocks() costs time in proportion to the heap (33 us each in a scan
        # of 20,000 small files, 5 s in all when taken per walk): the baseline is taken at the
        # first check, so a walk under _CHECK_EVERY opcodes never pays it. What the first
        # _CHECK_EVERY opcodes built goes uncounted: a few blocks each, under 10% of the bound.
        blocks = -1
        while not self.halted:
            if count >= most:
                walk.opcode_limit = True
                return
            if count and not count % _CHECK_EVERY:
                if blocks < 0:
                    blocks = sys.getallocatedblocks()
                elif sys.getallocatedblocks() - blocks > MAX_LIVE_BLOCKS:
                    walk.opcode_limit = walk.value_limit = True
                    return
            self.pos = position()
            key = read(1)
            if not key:
                walk.exhausted = self.pos >= self.limit
                raise EOFError("pickle data was truncated")
            code = key[0]
            handler = dispatch.get(code)
            count += 1
            walk.opcodes = count
            if handler is None:
                raise pickle.UnpicklingError(f"invalid load key, {key!r}")
            self.opcode = names[code]
            handler(self)
            count = walk.opcodes  # a nested joblib walk counts its opcodes too

    def _past_frame(self, start: int, end: int) -> None:
        """An opcode reads [start, end) across the current frame's end (a crafted stream)."""
        frame_end = self.frame_end
        if frame_end is None or start >= frame_end:
            self.frame_end = None
            return
        if end <= frame_end:
            return
        if self.walk.straddle_offset is None:
            self.walk.straddle_offset = self.pos
        if self.reader is Reader.C_STREAM:
            self.stream.seek(frame_end)  # the frame's unread bytes are dropped
        self.frame_end = None

    def _c_read(self, size: int, *, into: bool = False) -> bytes:
        """_pickle.c's read: fewer bytes than asked for is truncation. `into`: the payload of
        a bytes or bytearray opcode, which _Unpickler_ReadInto takes from the frame's unread
        bytes and then the stream, in order (no bytes dropped)."""
        if self.frame_end is not None:
            here = self.stream.tell()
            if into and here + size > self.frame_end:
                self.frame_end = None
            self._past_frame(here, here + size)
        data = self.stream.read(size)
        if len(data) < size:
            self.walk.exhausted = self.stream.tell() >= self.limit
            raise pickle.UnpicklingError("pickle data was truncated")
        return data

    def pop_mark(self) -> list[Any]:
        """pickle.py's own pop_mark (typeshed does not declare it)."""
        items = self.stack
        self.stack = self.metastack.pop()
        self.append = self.stack.append
        return items

    def _c_readline(self) -> bytes:
        """_pickle.c's readline: a line the input ends before its newline is truncation."""
        start = self.stream.tell()
        line = self.stream.readline()
        if self.frame_end is not None:
            end = start + len(line) + (0 if line.endswith(b"\n") else 1)
            self._past_frame(start, end)
            if self.stream.tell() != start + len(line):  # C_STREAM: read on after the frame
                line = self.stream.readline()
        if not line.endswith(b"\n"):
            self.walk.exhausted = self.stream.tell() >= self.limit
            raise pickle.UnpicklingError("pickle data was truncated")
        return line

    def fail(self, message: str, offset: int | None = None) -> None:
        if self.walk.error is None:
            self.walk.error = message
            self.walk.error_offset = self.pos if offset is None else offset
        self.halted = True

    def speculate(self) -> None:
        """From here on, what the loader does depends on a value the walk cannot know."""
        if self.walk.speculative_offset is None:
            self.walk.speculative_offset = self.pos

    # ------------------------------------------------------------------ bytes payloads
    def _payload(self, size: int) -> bytes:
        if size > self.limit - self.offset():  # never allocate what the stream cannot hold
            self.walk.exhausted = True
            raise pickle.UnpicklingError("pickle data was truncated")
        data = self._c_read(size, into=True) if self.c else self.read(size)
        if self.c and len(data) < size:
            raise pickle.UnpicklingError("pickle data was truncated")
        return data

    def load_bytearray8(self) -> None:
        (size,) = unpack("<Q", self.read(8))
        data = self._payload(size)
        if len(data) < size:
            raise pickle.UnpicklingError("pickle data was truncated")
        self.append(bytearray(data))

    def load_binbytes(self) -> None:
        (size,) = unpack("<I", self.read(4))
        self.append(self._payload(size))

    def load_short_binbytes(self) -> None:
        self.append(self._payload(self.read(1)[0]))

    def load_binbytes8(self) -> None:
        (size,) = unpack("<Q", self.read(8))
        if size > sys.maxsize:
            raise pickle.UnpicklingError("BINBYTES8 exceeds system's maximum size")
        self.append(self._payload(size))

    def load_frame(self) -> None:
        data = self.read(8)
        if len(data) < 8:
            raise pickle.UnpicklingError("pickle data was truncated")
        (size,) = unpack("<Q", data)
        if not self.c:
            if size > sys.maxsize:
                raise ValueError(f"frame size > sys.maxsize: {size}")
            self._unframer.load_frame(size)
            return
        # _pickle.c only checks that the frame's bytes are there, then reads on as usual; a
        # frame inside the current one's bytes is served from them and changes nothing.
        here = self.stream.tell()
        if self.frame_end is not None and here < self.frame_end:
            if here + size <= self.frame_end:
                return
            self._past_frame(here, here + size)
            here = self.stream.tell()
        if size > self.limit - here:
            self.walk.exhausted = True
            raise pickle.UnpicklingError("pickle data was truncated")
        self.frame_end = here + size

    # ------------------------------------------------------------------ C number parsing
    def load_int(self) -> None:
        if not self.c:
            super().load_int()  # type: ignore[misc]
            return
        line = self.readline()
        value = c_int(line)
        self.append(bool(value) if len(line) == 3 and value in (0, 1) else value)

    def load_long(self) -> None:
        if not self.c:
            super().load_long()  # type: ignore[misc]
            return
        self.append(c_long(self.readline()))

    def load_float(self) -> None:
        if not self.c:
            super().load_float()  # type: ignore[misc]
            return
        self.append(c_float(self.readline()))

    def load_put(self) -> None:
        if not self.c:
            super().load_put()  # type: ignore[misc]
            return
        index = c_index(self.readline())
        if index < 0:
            raise ValueError("negative PUT argument")
        self._memo_put(index)

    def load_get(self) -> None:
        if not self.c:
            super().load_get()  # type: ignore[misc]
            return
        index = c_index(self.readline())
        if index not in self.memo:
            raise pickle.UnpicklingError(f"Memo value not found at index {index}")
        self.append(self.memo[index])

    def load_binput(self) -> None:
        self._memo_put(self.read(1)[0])

    def load_long_binput(self) -> None:
        (index,) = unpack("<I", self.read(4))
        self._memo_put(index)

    def load_memoize(self) -> None:
        self._memo_put(len(self.memo))

    def _memo_put(self, index: int) -> None:
        if not self.stack:
            raise pickle.UnpicklingError("unpickling stack underflow")
        if self.c and index >= C_MEMO_LIMIT:
            self.speculate()  # _pickle.c may fail to allocate its memo table here
        self.memo[index] = self.stack[-1]

    def load_long1(self) -> None:
        super().load_long1()  # type: ignore[misc]
        if self.stack[-1] == TORCH_LEGACY_MAGIC:
            self.torch_magic = True

    def load_stop(self) -> None:
        if not self.stack:
            raise pickle.UnpicklingError("unpickling stack underflow")
        self.value = self.stack.pop()  # what load() returns
        raise _Stop
