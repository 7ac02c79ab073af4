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
  and reads array bytes straight from the file after a wrapper's BUILD: joblib.py) and
  dill.

When a stand-in's real value would decide what the loader does next (a STACK_GLOBAL on a
computed name, an EXT code this process does not know), the walk records the unknown and goes
on, and marks the point (`speculative_offset`) from which it may report more than CPython would.
"""

from __future__ import annotations

import _compat_pickle
import copyreg
import pickle
from typing import Any, ClassVar

from provscan.collectors.serialization.pickle.cparse import CError
from provscan.collectors.serialization.pickle.globals import PickleImport, Unresolved
from provscan.collectors.serialization.pickle.joblib import (
    ARRAY_WRAPPERS,
    FILE_WRAPPERS,
    array_layout,
)
from provscan.collectors.serialization.pickle.reading import Reading
from provscan.collectors.serialization.pickle.values import STUBS, Global, Made, Opaque, Reader

_INSTANTIATE = frozenset({"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__"})


class Walker(Reading):
    """One reader over one stream; records imports and calls into `walk`."""

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)

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
        if isinstance(name, STUBS) or isinstance(module, STUBS):
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
        if isinstance(args, STUBS) or isinstance(kwargs, STUBS):
            self.speculate()  # the real arguments decide whether the call happens
        elif self.c and not isinstance(args, tuple):
            raise TypeError("argument list must be a tuple")
        elif not self.c:
            iter(args)  # TypeError when pickle.py's *args cannot unpack it
        if kwargs is None or isinstance(kwargs, STUBS):
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
        if self.c and not isinstance(args, (tuple, *STUBS)):
            raise pickle.UnpicklingError("NEWOBJ expected an arg tuple.")
        cls = self._as_class(self.stack.pop())
        self._arguments(args)
        self.append(self.called(cls, args))

    def load_newobj_ex(self) -> None:
        kwargs, args = self.stack.pop(), self.stack.pop()
        cls = self.stack.pop()
        if self.c:
            if not isinstance(kwargs, (dict, *STUBS)):
                raise pickle.UnpicklingError("NEWOBJ_EX kwargs argument must be a dict")
            if not isinstance(args, (tuple, *STUBS)):
                raise pickle.UnpicklingError("NEWOBJ_EX args argument must be a tuple")
        cls = self._as_class(cls)
        self._arguments(args, kwargs)
        self.append(self.called(cls, args, kwargs))

    def _as_class(self, cls: Any) -> Any:
        """NEWOBJ's class: an import is called; a builtin value is not a type (an error)."""
        if isinstance(cls, (Made, Opaque)):
            self.speculate()  # whether a call's result is a class decides
        if isinstance(cls, STUBS):
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
                self._joblib_build(inst)
            return
        if isinstance(state, STUBS):
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

    def _joblib_build(self, made: Made) -> None:
        """joblib's load_build: read the array a wrapper stands for, from the file (joblib.py)."""
        name = made.by.qualified
        if name in FILE_WRAPPERS:
            return  # reads a separate .npy file, scanned on its own
        if name not in ARRAY_WRAPPERS:
            if name.rsplit(".", 1)[-1] in ("NumpyArrayWrapper", "NDArrayWrapper"):
                self.fail(f"{name} is not joblib's array wrapper, but is named like it")
            return
        self.stack.pop()
        self.walk.joblib_arrays += 1
        if self.walk.joblib_from is None:
            self.walk.joblib_from = len(self.walk.trail)
        layout = array_layout(made)
        if isinstance(layout, str):
            message = (
                f"the size of the joblib array built at offset {self.pos} is unknown: {layout}"
            )
            self.fail(message)
            return
        size, objects, padded = layout
        stream, start = self.stream, self.stream.tell()
        if objects:
            self._joblib_nested(start)
            self.append(None)
            return
        data = start
        if padded:
            pad = stream.read(1)
            data = start + 1 + (pad[0] if pad else 0)
        if data + size > self.limit:
            self.walk.exhausted = True
            remain = max(0, self.limit - start)
            self.fail(
                f"the joblib array built at offset {self.pos} declares {size} data bytes at "
                f"offset {start}, but only {remain} bytes remain"
            )
            return
        stream.seek(data + size)
        self.append(None)

    def _joblib_nested(self, start: int) -> None:
        """An object array: joblib unpickles a nested stream here (pickle.py); its imports count."""
        inner = Walker(
            self.stream, self.walk, Reader.PY, limit=self.limit, max_opcodes=self.max_opcodes
        )
        if not inner.run():
            self.halted = True
            if self.walk.error is not None and not self.walk.error.startswith("nested"):
                self.walk.error = (
                    f"nested pickle of a joblib object array at offset {start}: {self.walk.error}"
                )

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
        if isinstance(target, STUBS):
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
        add = target.add if not isinstance(target, STUBS) else None
        for item in items:
            if add is not None:
                add(item)


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
