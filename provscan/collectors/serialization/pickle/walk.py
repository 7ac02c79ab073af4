"""What does one pickle import and call? CPython's own unpickler, with every import and call stubbed.

Why drive `pickle._Unpickler` instead of walking `pickletools.genops`: a scanner that parses
opcodes its own way is beaten by every byte sequence it reads differently from the loader
(pickletools stops at a frame boundary, a base-0 INT or a literal backslash where CPython goes
on). `pickle._Unpickler` is CPython's pure-Python twin of `_pickle.c`: subclassing it reuses
CPython's own opcode table, argument decoding, stack, mark and memo rules and stopping points.
Nothing runs: `find_class` returns a stand-in that records the import, and every opcode that
would call or mutate an imported object (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST, BUILD, APPEND(S),
SETITEM(S), ADDITEMS) records the use instead. Every other value is a plain builtin.

Two readers, because loaders use both:

* `Reader.C` is `_pickle.c`, used by `pickle.load`, `torch.load` and `numpy.load`. Where
  pickle.py and `_pickle.c` (CPython 3.11) differ, the C behaviour is reproduced here, each
  case shown in tests/collectors/serialization/test_pickle_differential.py: FRAME only checks that its
  length is available (opcodes may straddle frames); INT is `strtol(s, 0)` with a base-0
  `PyLong_FromString` fallback, LONG/PUT/GET/FLOAT stop at a NUL byte; a line without its
  newline, or a GLOBAL or INST line shorter than two bytes, is truncation; INST looks for its
  mark first; REDUCE and NEWOBJ need a tuple; SETITEMS checks for an odd count before setting
  anything; a container under another mark, or a mark with no items, is handled before the
  container is looked at; BUILD treats any non-None state as a dict; a memo index too big to
  allocate fails.
* `Reader.C_STREAM` is `_pickle.c` over a stream without peek() (torch.load's BytesIO of
  data.pkl): where an opcode reads past the end of its frame, the frame's unread bytes are
  dropped and reading goes on from the stream (bytes payloads excepted: _Unpickler_ReadInto
  takes them in order). It is walked only when the C reading met such an opcode.
* `Reader.PY` is `pickle._Unpickler` itself, used by joblib (its NumpyUnpickler subclasses it
  and reads array bytes straight from the file after a wrapper's BUILD: pickle_joblib.py) and
  dill.

When a stand-in's real value would decide what the loader does next (a STACK_GLOBAL on a
computed name, an EXT code this process does not know), the walk records the unknown and goes
on, and marks the point (`speculative_offset`) from which it may report more than CPython would.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import enum
import pickle
import re
import sys
from dataclasses import dataclass, field
from struct import unpack
from typing import Any, ClassVar, Protocol

from provscan.collectors.serialization.pickle.globals import PickleImport, Unresolved

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


class Reader(enum.Enum):
    C = "_pickle.c over bytes or a buffered file (pickle.loads, pickle.load, numpy.load)"
    # _pickle.c over a stream without peek() buffers a frame and, when an opcode runs past its
    # end, drops the frame's unread bytes and reads on from the stream (_Unpickler_ReadImpl).
    C_STREAM = "_pickle.c over an unbuffered stream (torch.load's BytesIO of data.pkl)"
    PY = "pickle.py (joblib.load, dill)"


@dataclass
class PickleWalk:
    imports: dict[str, PickleImport] = field(default_factory=dict)  # by qualified name
    dynamic: list[Unresolved] = field(default_factory=list)
    unknown_extensions: list[Unresolved] = field(default_factory=list)
    pickles: int = 0  # complete pickles (ended by STOP)
    opcodes: int = 0
    error: str | None = None  # first error, where the unpickler stops
    error_offset: int | None = None
    exhausted: bool = False  # the input ended inside a pickle
    opcode_limit: bool = False
    value_limit: bool = False  # stopped because it held MAX_LIVE_BLOCKS new values
    speculative_offset: int | None = None  # from here the walk may report more than CPython
    # Ordered ("import" | "call", "module.name" as written) events. Compared between readers
    # and against CPython in the differential tests.
    trail: list[tuple[str, str]] = field(default_factory=list)
    reader: Reader = Reader.C
    disagreement: str | None = None  # how the two readers differ, when they do
    straddle_offset: int | None = None  # an opcode that reads across its frame's end
    joblib_arrays: int = 0  # joblib array wrappers whose data the walk read past (or tried to)
    joblib_from: int | None = None  # len(trail) when joblib first read array bytes

    @property
    def events(self) -> int:
        return len(self.imports) + len(self.dynamic) + len(self.unknown_extensions)

    @property
    def plausible(self) -> int:
        """Imports a loader could resolve (an identifier path), and imports it cannot name."""
        named = sum(1 for i in self.imports.values() if importable(i.module))
        return named + len(self.dynamic) + len(self.unknown_extensions)


def importable(module: str) -> bool:
    """Whether `module` is spelled like a module path (text that only parses as one is not)."""
    return bool(module) and all(part.isidentifier() for part in module.split("."))


class Stream(Protocol):
    """What the walk reads from: a BytesIO, or a BoundedReader over a file."""

    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self) -> bytes: ...
    def tell(self) -> int: ...
    def seek(self, offset: int, /) -> int: ...


class Global:
    """What find_class returned: the imported object, never imported."""

    __slots__ = ("raw", "record")

    def __init__(self, record: PickleImport, raw: str) -> None:
        self.record = record
        self.raw = raw  # "module.name" as this import wrote it


class Made:
    """What calling an imported object returned; keeps its arguments and state for joblib."""

    __slots__ = ("args", "by", "init", "kwargs", "state")

    def __init__(
        self, by: PickleImport, args: Any = (), kwargs: Any = None, *, init: bool = False
    ) -> None:
        self.by = by
        self.args = args
        self.kwargs = kwargs
        self.init = init  # built by calling the class (its __init__ ran), not by __new__ alone
        self.state: list[Any] = []


class Opaque:
    """A value the walk cannot know: a persistent id's object, an unknown extension's."""

    __slots__ = ()


_STUBS = (Global, Made, Opaque)
_INSTANTIATE = frozenset({"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__"})


class _Stop(Exception):
    pass


class CError(pickle.UnpicklingError):
    """Where _pickle.c stops and pickle.py would not."""


# glibc strtol(s, &end, 0): optional whitespace and sign, then 0x/0X hex, 0 octal or decimal.
_STRTOL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(?:(0[xX])([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))")
_C_LONG_MIN, _C_LONG_MAX = -(1 << 63), (1 << 63) - 1
# PyOS_string_to_double: no leading whitespace, no underscores.
_C_FLOAT = re.compile(
    rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)", re.I
)


def _c_string(line: bytes) -> bytes:
    """A text opcode's line as _pickle.c's C string functions see it: up to the first NUL.
    A line shorter than two bytes (no argument before the newline) is truncation."""
    if len(line) < 2:
        raise CError("pickle data was truncated")
    nul = line.find(b"\0")
    return line if nul < 0 else line[:nul]


def c_int(line: bytes) -> int:
    """_pickle.c load_int: strtol base 0, else PyLong_FromString(s, NULL, 0)."""
    text = _c_string(line)
    match = _STRTOL.match(text)
    value, end = 0, 0  # no digits: strtol returns 0 with its end at the start
    if match:
        sign, hexa, hex_digits, octal, decimal = match.groups()
        if hexa:
            value = int(hex_digits, 16)
        elif octal:
            value = int(octal, 8)
        else:
            value = int(decimal)
        value, end = (-value if sign == b"-" else value), match.end()
    if _C_LONG_MIN <= value <= _C_LONG_MAX and text[end : end + 1] in (b"\n", b""):
        return value
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError("could not convert string to int") from None


def c_long(line: bytes) -> int:
    """_pickle.c load_long: a trailing 'L' dropped, then PyLong_FromString(s, NULL, 0)."""
    text = _c_string(line)
    return int(_c_string(line[:-2]) if line[-2:-1] == b"L" else text, 0)


def c_float(line: bytes) -> float:
    """_pickle.c load_float: PyOS_string_to_double, then only a newline or NUL may follow."""
    text = _c_string(line)
    match = _C_FLOAT.match(text)
    if not match or text[match.end() : match.end() + 1] not in (b"\n", b""):
        raise ValueError("could not convert string to float")
    return float(match.group())


def c_index(line: bytes) -> int:
    """PUT/GET: PyLong_FromString(s, NULL, 10) over the NUL-terminated line."""
    return int(_c_string(line), 10)


class Walker(pickle._Unpickler):
    """One reader over one stream; records imports and calls into `walk`."""

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)
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

    # ------------------------------------------------------------------ recording
    def find_class(self, module: str, name: str) -> Global:
        raw = f"{module}.{name}"
        # Both unpicklers' find_class rename Python 2 names for protocols < 3 (fix_imports).
        if self.proto < 3:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        qualified = f"{module}.{name}"
        self.walk.trail.append(("import", raw))
        found = self.walk.imports.get(qualified)
        if found is None:
            found = PickleImport(module, name, raw, self.opcode, self.pos)
            self.walk.imports[qualified] = found
        return Global(found, raw)

    def persistent_load(self, pid: Any) -> Opaque:
        return Opaque()  # torch's storages; a loader without persistent_load fails here

    def called(self, target: Any, args: Any = (), kwargs: Any = None) -> Any:
        """The value a call on `target` returns; an imported target records the call."""
        if isinstance(target, Global):
            record = target.record
            self.walk.trail.append(("call", target.raw))
            if record.call_opcode is None:
                record.call_opcode, record.call_offset = self.opcode, self.pos
            instance_of = args[0] if isinstance(args, tuple) and args else None
            if record.qualified in _INSTANTIATE and isinstance(instance_of, Global):
                return Made(instance_of.record)  # cls.__new__(cls): an instance of cls
            return Made(record, args, kwargs, init=self.opcode in ("REDUCE", "OBJ", "INST"))
        if isinstance(target, (Made, Opaque)):
            return Opaque()  # calls whatever an earlier call returned
        raise TypeError(f"'{type(target).__name__}' object is not callable")

    def mutated(self, target: Any) -> bool:
        """APPEND/SETITEM/ADDITEMS/BUILD on a stand-in: recorded; True when handled."""
        if isinstance(target, Global):
            self.called(target)
            return True
        return isinstance(target, (Made, Opaque))

    # ------------------------------------------------------------------ imports
    def load_global(self) -> None:
        module, name = self.readline(), self.readline()
        if self.c and (len(module) < 2 or len(name) < 2):
            raise CError("pickle data was truncated")
        self.append(self.find_class(module[:-1].decode("utf-8"), name[:-1].decode("utf-8")))

    def load_stack_global(self) -> None:
        name, module = self.stack.pop(), self.stack.pop()
        if isinstance(name, _STUBS) or isinstance(module, _STUBS):
            detail = f"module is {_kind(module)}, name is {_kind(name)}"
            self.walk.dynamic.append(Unresolved(self.opcode, self.pos, detail))
            self.walk.trail.append(("import", "?"))
            self.speculate()
            self.append(Opaque())
            return
        if type(name) is not str or type(module) is not str:
            raise pickle.UnpicklingError("STACK_GLOBAL requires str")
        self.append(self.find_class(module, name))

    def get_extension(self, code: int) -> None:
        key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
        if key:
            self.append(self.find_class(*key))
            return
        if code <= 0:
            raise pickle.UnpicklingError("EXT specifies code <= 0")
        # What the code names depends on the loading process's copyreg registry.
        detail = f"extension code {code}"
        self.walk.unknown_extensions.append(Unresolved(self.opcode, self.pos, detail))
        self.walk.trail.append(("import", "?"))
        self.speculate()
        self.append(Opaque())

    # ------------------------------------------------------------------ calls
    def _arguments(self, args: Any, kwargs: Any = None) -> None:
        """Fail where the unpickler fails before calling: _pickle.c wants a tuple (and a dict
        for NEWOBJ_EX), pickle.py's f(*args, **kwargs) an iterable and a mapping."""
        if isinstance(args, _STUBS) or isinstance(kwargs, _STUBS):
            self.speculate()  # the real arguments decide whether the call happens
        elif self.c and not isinstance(args, tuple):
            raise TypeError("argument list must be a tuple")
        elif not self.c:
            iter(args)  # TypeError when pickle.py's *args cannot unpack it
        if kwargs is None or isinstance(kwargs, _STUBS):
            return
        if not isinstance(kwargs, dict):
            raise TypeError("argument after ** must be a mapping")
        if not all(isinstance(key, str) for key in kwargs):
            self.speculate()  # a real class's __new__ may accept what a Python function cannot

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        self._arguments(args)
        self.stack[-1] = self.called(func, args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        if self.c and not isinstance(args, (tuple, *_STUBS)):
            raise pickle.UnpicklingError("NEWOBJ expected an arg tuple.")
        cls = self._as_class(self.stack.pop())
        self._arguments(args)
        self.append(self.called(cls, args))

    def load_newobj_ex(self) -> None:
        kwargs, args = self.stack.pop(), self.stack.pop()
        cls = self.stack.pop()
        if self.c:
            if not isinstance(kwargs, (dict, *_STUBS)):
                raise pickle.UnpicklingError("NEWOBJ_EX kwargs argument must be a dict")
            if not isinstance(args, (tuple, *_STUBS)):
                raise pickle.UnpicklingError("NEWOBJ_EX args argument must be a tuple")
        cls = self._as_class(cls)
        self._arguments(args, kwargs)
        self.append(self.called(cls, args, kwargs))

    def _as_class(self, cls: Any) -> Any:
        """NEWOBJ's class: an import is called; a builtin value is not a type (an error)."""
        if isinstance(cls, (Made, Opaque)):
            self.speculate()  # whether a call's result is a class decides
        if isinstance(cls, _STUBS):
            return cls
        raise pickle.UnpicklingError(
            f"NEWOBJ class argument must be a type, not {type(cls).__name__}"
        )

    def load_obj(self) -> None:
        args = self.pop_mark()
        if not args:
            raise pickle.UnpicklingError("unpickling stack underflow")
        cls = args.pop(0)
        self.append(self.called(cls, tuple(args)))

    def load_inst(self) -> None:
        if self.c and not self.metastack:
            raise pickle.UnpicklingError("could not find MARK")
        module, name = self.readline(), self.readline()
        if self.c and (len(module) < 2 or len(name) < 2):
            raise CError("pickle data was truncated")
        found = self.find_class(module[:-1].decode("ascii"), name[:-1].decode("ascii"))
        args = tuple(self.pop_mark())  # before self.append, which pop_mark rebinds
        self.append(self.called(found, args))

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, Made):
            inst.state.append(state)
        if self.mutated(inst):
            if self.joblib and isinstance(inst, Made):
                from provscan.collectors.serialization.pickle.joblib import after_build

                after_build(self, inst)
            return
        if isinstance(state, _STUBS):
            self.speculate()  # the state's real value decides; a dict would just be set
            return
        if not self.c:
            self.stack.append(state)  # pickle.py's load_build pops it itself
            super().load_build()  # type: ignore[misc]
            return
        # _pickle.c load_build: any non-None state must be a dict, set into __dict__.
        slotstate = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slotstate = state
        if state is not None:
            if not isinstance(state, dict):
                raise pickle.UnpicklingError("state is not a dictionary")
            _ = inst.__dict__  # builtins have none: AttributeError, as in C
            raise AttributeError(f"'{type(inst).__name__}' object has no attribute '__dict__'")
        if slotstate is not None:
            if not isinstance(slotstate, dict):
                raise pickle.UnpicklingError("slot state is not a dictionary")
            for key, value in slotstate.items():
                setattr(inst, key, value)

    # ------------------------------------------------------------------ containers
    def _c_items(self) -> list[Any] | None:
        """The items after the mark; None where _pickle.c has nothing to do. Its container
        must sit above any other mark, and with no items it never looks at the container."""
        items = self.pop_mark()
        if self.c:
            if not self.stack:
                raise pickle.UnpicklingError("unexpected MARK found")
            if not items:
                return None
        return items

    def load_append(self) -> None:
        value = self.stack.pop()
        if not self.mutated(self.stack[-1]):
            self.stack[-1].append(value)

    # _pickle.c returns before looking at the target when a mark has no items after it;
    # pickle.py still calls extend([]) for APPENDS (and fails on a target without one).
    def load_appends(self) -> None:
        items = self._c_items()
        if items is None:
            return
        target = self.stack[-1]
        if not self.mutated(target):
            extend = getattr(target, "extend", None)
            if extend is not None:
                extend(items)
                return
            append = target.append
            for item in items:
                append(item)

    def load_setitem(self) -> None:
        value, key = self.stack.pop(), self.stack.pop()
        if not self.mutated(self.stack[-1]):
            self.stack[-1][key] = value

    def load_setitems(self) -> None:
        items = self._c_items()
        if items is None:
            return
        if self.c and len(items) % 2:
            raise pickle.UnpicklingError("odd number of items for SETITEMS")
        target = self.stack[-1]
        if isinstance(target, _STUBS):
            if len(items) >= 2:  # pickle.py sets pair by pair, then fails on a lone key
                self.mutated(target)
            if len(items) % 2:
                raise IndexError("list index out of range")
            return
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_additems(self) -> None:
        items = self._c_items()
        if items is None:
            return
        target = self.stack[-1]
        if isinstance(target, set):
            target.update(items)
            return
        if items and self.mutated(target):
            return
        add = target.add if not isinstance(target, _STUBS) else None
        for item in items:
            if add is not None:
                add(item)

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


def _kind(value: Any) -> str:
    if isinstance(value, Global):
        return f"the object {value.record.qualified}"
    if isinstance(value, Made):
        return f"a value returned by {value.by.qualified}"
    if isinstance(value, str):
        return repr(value)
    return "not a string"


# Every handler this class overrides replaces pickle.py's in the dispatch table.
for _code, _handler in list(Walker.dispatch.items()):
    _mine = getattr(Walker, _handler.__name__, None)
    if _mine is not None and _mine is not _handler:
        Walker.dispatch[_code] = _mine
# Opcode names as findings give them (load_stack_global -> STACK_GLOBAL).
_NAMES = {code: handler.__name__[5:].upper() for code, handler in Walker.dispatch.items()}
