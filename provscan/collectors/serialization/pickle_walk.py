"""What does one pickle import and call? A symbolic walk over its opcodes, never executing them."""

from __future__ import annotations

import _compat_pickle
import copyreg
import pickle
import pickletools
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, cast

from provscan.collectors.serialization.pickle_globals import PickleImport, Unresolved

# torch's legacy (non-zip) format: a pickle of this number, then the protocol, sys info,
# the object and the storage keys, followed by raw storage bytes that must not be parsed.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PICKLES = 5

# Opcodes that push a str. STRING/BINSTRING count: CPython's default encoding decodes them
# to str (picklescan GHSA fix 93764d6).
_STRING_OPCODES = frozenset(
    op.name
    for op in pickletools.opcodes
    if op.stack_after in ([pickletools.pyunicode], [pickletools.pybytes_or_str])
)
_CALL_OPCODES = frozenset({"REDUCE", "NEWOBJ", "NEWOBJ_EX"})
_SPECIAL_NAMES = """MARK PROTO PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET GLOBAL INST
STACK_GLOBAL EXT1 EXT2 EXT4 OBJ BUILD POP DUP STOP PERSID BINPERSID LONG1"""
# Opcodes with their own handling in PickleMachine.step; all others only move the stack.
_SPECIAL = _STRING_OPCODES | _CALL_OPCODES | frozenset(_SPECIAL_NAMES.split())


def _effect(op: pickletools.OpcodeInfo) -> tuple[bool, int, int]:
    """(pops to a mark, items popped below the mark or in all, items pushed)."""
    before = op.stack_before
    if pickletools.markobject in before:
        return True, before.index(pickletools.markobject), len(op.stack_after)
    return False, len(before), len(op.stack_after)


_EFFECTS = {op.name: _effect(op) for op in pickletools.opcodes}
_BY_CODE = {op.code: op for op in pickletools.opcodes}


@dataclass
class PickleWalk:
    imports: dict[str, PickleImport] = field(default_factory=dict)  # by qualified name
    dynamic: list[Unresolved] = field(default_factory=list)
    unknown_extensions: list[Unresolved] = field(default_factory=list)
    pickles: int = 0  # complete pickles (ended by STOP)
    opcodes: int = 0
    error: str | None = None  # first parse or stack error, where CPython's unpickler stops
    error_offset: int | None = None
    exhausted: bool = False  # the input ended inside a pickle
    opcode_limit: bool = False

    @property
    def events(self) -> int:
        return len(self.imports) + len(self.dynamic) + len(self.unknown_extensions)


class _Token:
    """_MARK: the MARK opcode's marker (CPython keeps marks apart: popping one is an underflow).
    _OPAQUE: any value whose identity does not matter to the scan."""


@dataclass(frozen=True)
class _Str:
    value: str


@dataclass(frozen=True)
class _Ref:
    target: PickleImport  # the imported object itself (a class or function)


@dataclass(frozen=True)
class _Made:
    by: PickleImport  # what calling an import returned


@dataclass(eq=False)
class _Lit:
    """An int, bool or None, or a small tuple or dict of values, as the pickle spells it."""

    value: Any


@dataclass(eq=False)
class _Dtype:
    """A numpy.dtype built by REDUCE from a string (joblib array metadata), and its BUILD state."""

    spec: str
    state: tuple[Any, ...] | None = None


_MARK, _OPAQUE = _Token(), _Token()
_Value = _Token | _Str | _Ref | _Made | _Lit | _Dtype


class Stream(Protocol):
    """What the walk reads from: a BytesIO, or a BoundedReader over a file."""

    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self) -> bytes: ...
    def tell(self) -> int: ...
    def seek(self, offset: int, /) -> int: ...


def _kind(value: _Value) -> str:
    if isinstance(value, _Str):
        return repr(value.value)
    if isinstance(value, _Ref):
        return f"the object {value.target.qualified}"
    if isinstance(value, _Made):
        return f"a value returned by {value.by.qualified}"
    return "not a string literal"


def _extension_target(code: int) -> tuple[str, str] | None:
    # Read-only: what copyreg.add_extension registered in *this* process. A loader's process
    # may differ, which is why an unknown code is reported rather than ignored.
    for key, value in copyreg._extension_registry.items():  # type: ignore[attr-defined]
        if value == code:
            return (str(key[0]), str(key[1]))
    return None


class PickleMachine:
    """Symbolic stack and memo for one pickle; unknown effects come from pickletools' metadata."""

    def __init__(
        self, walk: PickleWalk, stream: Stream, limit: int, *, nested: bool = False
    ) -> None:
        self.walk = walk
        self.stream = stream
        self.limit = limit
        self.nested = nested  # a joblib object array's pickle: plain pickle.Unpickler semantics
        self.halted = False  # the stream can no longer be followed (joblib array data)
        self.max_opcodes = 0
        self.wrappers: dict[int, dict[Any, Any]] = {}  # joblib wrapper objects' attributes
        self.stack: list[_Value] = []
        self.memo: dict[int, _Value] = {}
        self.proto = 0
        self.error: tuple[str, int] | None = None
        self.torch_magic = False
        self.complete = False

    def fail(self, message: str, offset: int) -> None:
        # Keep walking after a stack error: our model of the stack is only an approximation,
        # and stopping would hide imports that follow.
        if self.error is None:
            self.error = (message, offset)

    def _has_top(self, offset: int) -> bool:
        if self.stack and self.stack[-1] is not _MARK:
            return True
        self.fail("unpickling stack underflow", offset)
        return False

    def pop(self, offset: int) -> _Value:
        return self.stack.pop() if self._has_top(offset) else _OPAQUE

    def top(self, offset: int) -> _Value:
        return self.stack[-1] if self._has_top(offset) else _OPAQUE

    def pop_to_mark(self, offset: int) -> list[_Value]:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index] is _MARK:
                items = self.stack[index + 1 :]
                del self.stack[index:]
                return items
        self.fail("could not find MARK", offset)
        return []

    def run(self, max_opcodes: int) -> None:
        ops = pickletools.genops(cast(IO[bytes], self.stream))  # needs read, readline and tell
        tell = self.stream.tell
        next_offset = tell()
        self.max_opcodes = max_opcodes
        while not self.halted:
            if self.walk.opcodes >= max_opcodes:
                self.walk.opcode_limit = True
                return
            try:
                opcode, arg, pos = next(ops)
            except StopIteration:
                self.complete = True
                return
            except Exception as exc:  # genops raises ValueError and friends on hostile bytes
                exhausted = tell() >= self.limit
                if self.literal_line_opcode(next_offset):
                    ops = pickletools.genops(cast(IO[bytes], self.stream))
                    next_offset = tell()
                    continue
                self.fail(str(exc) or type(exc).__name__, next_offset)
                self.walk.exhausted = exhausted
                return
            self.walk.opcodes += 1
            self.step(opcode, arg, int(pos) if pos is not None else next_offset)
            next_offset = tell()

    def literal_line_opcode(self, offset: int) -> bool:
        """Walk a GLOBAL, INST or PERSID whose argument genops cannot parse, as CPython does.

        pickletools escape-decodes these arguments and fails on a backslash that CPython's
        unpickler takes literally; stopping there would hide every import after it.
        """
        self.stream.seek(offset)
        code = self.stream.read(1)
        if code not in (b"c", b"i", b"P"):
            return False
        lines = [self.stream.readline() for _ in range(1 if code == b"P" else 2)]
        if not all(line.endswith(b"\n") for line in lines):
            return False
        self.walk.opcodes += 1
        self.step(_BY_CODE[code.decode("latin-1")], None, offset)
        return True

    def import_(self, module: str, name: str, opcode: str, offset: int) -> PickleImport:
        raw = f"{module}.{name}"
        # CPython's find_class renames Python 2 names for protocols < 3 (fix_imports=True).
        if self.proto < 3:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        found = self.walk.imports.get(f"{module}.{name}")
        if found is None:
            found = PickleImport(module, name, raw, opcode, offset)
            self.walk.imports[found.qualified] = found
        return found

    def call(self, callee: _Value, opcode: str, offset: int) -> _Value:
        if isinstance(callee, _Ref):
            if callee.target.call_opcode is None:
                callee.target.call_opcode, callee.target.call_offset = opcode, offset
            return _Made(callee.target)
        return _OPAQUE

    def line_pair(self, offset: int) -> tuple[str, str]:
        """Module and name of GLOBAL/INST, read exactly as CPython does (two lines)."""
        here = self.stream.tell()
        self.stream.seek(offset + 1)
        module = self.stream.readline().rstrip(b"\n").decode("utf-8", "backslashreplace")
        name = self.stream.readline().rstrip(b"\n").decode("utf-8", "backslashreplace")
        self.stream.seek(here)
        return module, name

    def step(self, op: pickletools.OpcodeInfo, arg: Any, pos: int) -> None:  # noqa: C901
        name = op.name
        if name in literal_opcodes() and literal_step(self, name, arg, pos):
            return
        if name not in _SPECIAL:
            self.generic(name, pos)
        elif name in _STRING_OPCODES:
            self.stack.append(_Str(str(arg)))
        elif name == "MARK":
            self.stack.append(_MARK)
        elif name == "PROTO":
            self.proto = int(arg)
            if self.proto > pickle.HIGHEST_PROTOCOL:
                self.fail(f"unsupported pickle protocol: {self.proto}", pos)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[int(arg)] = self.top(pos)
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top(pos)
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            value = self.memo.get(int(arg))
            if value is None:
                self.fail(f"memo key {arg} was never stored", pos)
            self.stack.append(_OPAQUE if value is None else value)
        elif name == "GLOBAL":
            self.stack.append(_Ref(self.import_(*self.line_pair(pos), name, pos)))
        elif name == "INST":
            self.pop_to_mark(pos)
            imported = _Ref(self.import_(*self.line_pair(pos), name, pos))
            self.stack.append(self.call(imported, name, pos))
        elif name == "STACK_GLOBAL":
            global_name, module = self.pop(pos), self.pop(pos)
            if isinstance(module, _Str) and isinstance(global_name, _Str):
                self.stack.append(_Ref(self.import_(module.value, global_name.value, name, pos)))
            else:
                detail = f"module is {_kind(module)}, name is {_kind(global_name)}"
                self.walk.dynamic.append(Unresolved(name, pos, detail))
                self.stack.append(_OPAQUE)
        elif name in ("EXT1", "EXT2", "EXT4"):
            target = _extension_target(int(arg))
            if target is None:
                self.walk.unknown_extensions.append(Unresolved(name, pos, f"extension code {arg}"))
                self.stack.append(_OPAQUE)
            else:
                self.stack.append(_Ref(self.import_(*target, name, pos)))
        elif name == "OBJ":
            items = self.pop_to_mark(pos)
            if not items:
                self.fail("OBJ without a class", pos)
            self.stack.append(self.call(items[0] if items else _OPAQUE, name, pos))
        elif name in _CALL_OPCODES:
            operands = [self.pop(pos) for _ in range(3 if name == "NEWOBJ_EX" else 2)]
            self.stack.append(self.call(operands[-1], name, pos))  # the callable is deepest
        elif name == "BUILD":
            self.pop(pos)
            self.call(self.top(pos), name, pos)  # setstate on an imported object changes it
        elif name == "POP":
            # CPython's POP also discards a mark (fickling's OBJ-hidden-by-POP bypass needs this).
            if self.stack:
                self.stack.pop()
            else:
                self.fail("unpickling stack underflow", pos)
        elif name == "DUP":
            self.stack.append(self.top(pos))
        elif name == "STOP":
            self.pop(pos)
        else:
            # PERSID/BINPERSID (torch's persistent_load of storages) are expected and
            # import nothing: they fall through to the generic stack effect.
            if name == "LONG1" and arg == TORCH_LEGACY_MAGIC:
                self.torch_magic = True
            self.generic(name, pos)

    def generic(self, name: str, pos: int) -> None:
        """Apply an opcode's stack effect as pickletools declares it."""
        to_mark, below, after = _EFFECTS[name]
        if to_mark:
            self.pop_to_mark(pos)
        container: _Value = _OPAQUE
        for _ in range(below):
            container = self.pop(pos)
        if isinstance(container, _Ref):
            # APPEND/SETITEM(S)/ADDITEMS into an imported object mutates it in place.
            self.call(container, name, pos)
        self.stack.extend([_OPAQUE] * after)


# Imported last: pickle_joblib builds on the value types above.
from provscan.collectors.serialization.pickle_joblib import (  # noqa: E402
    literal_opcodes,
    literal_step,
)
