"""What does a walk of a pickle record, and what stands in for the objects the pickle builds?"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from provscan.collectors.serialization.pickle.globals import PickleImport, Unresolved


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


# Every stand-in: a value whose real identity only the loading process would know.
STUBS = (Global, Made, Opaque)
