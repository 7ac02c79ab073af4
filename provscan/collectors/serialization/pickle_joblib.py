"""joblib's array layout: the raw bytes joblib.dump writes inside the pickle stream.

joblib.dump pickles each numpy array as a `joblib.numpy_pickle.NumpyArrayWrapper` and writes the
array's data straight after the BUILD opcode that sets the wrapper's state; NumpyUnpickler's
load_build reads it back (joblib/numpy_pickle.py NumpyArrayWrapper.write_array / read_array):

* object dtype: a nested pickle of the array (protocol 5), loaded by a plain Unpickler;
* any other dtype: when the state holds `numpy_array_alignment_bytes` (joblib >= 1.2) and it is
  not None, one byte giving a padding length and that many padding bytes; then
  prod(shape) * itemsize bytes of data.

The walk skips exactly those bytes, working out the size from the literals it saw (never
allocating it), so globals after an array are still seen. Only a wrapper the pickle itself
imported triggers this, so ordinary pickles read as before. joblib <= 0.9's NDArrayWrapper and
ZNDArrayWrapper keep arrays in separate files: nothing in the stream to skip.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np

from provscan.collectors.serialization import pickle_walk as pw

WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_WRAPPER_ARGS = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
_WRAPPER_DEFAULTS: dict[Any, Any] = {"allow_mmap": False, "numpy_array_alignment_bytes": 16}
_DTYPE = frozenset({"numpy.dtype"})
_RECONSTRUCTOR = "copyreg._reconstructor"
_DTYPE_SPEC = re.compile(r"[<>=|]?[A-Za-z?][0-9]{0,9}")
_INTS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_OPCODES = (
    _INTS
    | frozenset(_CONSTANTS)
    | frozenset(_TUPLES)
    | frozenset({"EMPTY_TUPLE", "TUPLE", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS"})
    | frozenset({"REDUCE", "BUILD"})
)
MAX_ITEMS = 64  # numpy's most dimensions; larger tuples and dicts are not followed
MAX_INT_BITS = 64


def literal_opcodes() -> frozenset[str]:
    return _OPCODES


def _plain(value: pw._Value) -> Any:
    """A dict key as Python sees it, or the value itself when it is not a scalar literal."""
    if isinstance(value, pw._Str):
        return value.value
    if isinstance(value, pw._Lit) and not isinstance(value.value, (tuple, dict)):
        return value.value
    return value


def _set_items(machine: pw.PickleMachine, pairs: list[pw._Value], pos: int) -> None:
    target = machine.top(pos)
    if isinstance(target, pw._Ref):
        machine.call(target, "SETITEMS", pos)  # mutating an imported object
    if not (isinstance(target, pw._Lit) and isinstance(target.value, dict)):
        return
    for key, value in zip(pairs[::2], pairs[1::2], strict=False):
        if len(target.value) >= MAX_ITEMS:
            target.value = None  # too big to be joblib metadata; no longer followed
            return
        plain = _plain(key)
        if isinstance(plain, (str, int, type(None))):
            target.value[plain] = value


def literal_step(machine: pw.PickleMachine, name: str, arg: Any, pos: int) -> bool:
    """Apply an opcode that builds literals; False leaves it to the generic handling."""
    stack = machine.stack
    if name in _INTS:
        small = not isinstance(arg, int) or arg.bit_length() <= MAX_INT_BITS
        stack.append(pw._Lit(arg) if small else pw._OPAQUE)
    elif name in _CONSTANTS:
        stack.append(pw._Lit(_CONSTANTS[name]))
    elif name == "EMPTY_TUPLE":
        stack.append(pw._Lit(()))
    elif name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
        if name == "TUPLE":
            items = machine.pop_to_mark(pos)
        else:
            items = [machine.pop(pos) for _ in range(_TUPLES[name])][::-1]
        stack.append(pw._Lit(tuple(items)) if len(items) <= MAX_ITEMS else pw._OPAQUE)
    elif name == "EMPTY_DICT":
        stack.append(pw._Lit({}))
    elif name == "DICT":
        items = machine.pop_to_mark(pos)
        stack.append(pw._Lit({}))
        _set_items(machine, items, pos)
    elif name == "SETITEM":
        value, key = machine.pop(pos), machine.pop(pos)
        _set_items(machine, [key, value], pos)
    elif name == "SETITEMS":
        _set_items(machine, machine.pop_to_mark(pos), pos)
    elif name == "REDUCE":
        args, callee = machine.pop(pos), machine.pop(pos)
        stack.append(_reduce(machine, callee, args, pos))
    else:  # BUILD
        state = machine.pop(pos)
        target = machine.top(pos)
        machine.call(target, name, pos)
        if isinstance(target, pw._Dtype) and isinstance(state, pw._Lit):
            target.state = state.value if isinstance(state.value, tuple) else None
        elif _is_wrapper(target) and not machine.nested:
            attributes = machine.wrappers.setdefault(id(target), {})
            if isinstance(state, pw._Lit) and isinstance(state.value, dict):
                attributes.update(state.value)
            else:
                attributes["__state__"] = state  # not a literal dict: size unknown
            stack[-1] = pw._OPAQUE  # NumpyUnpickler replaces the wrapper with the array
            skip_array(machine, attributes, pos)
    return True


def _is_wrapper(value: pw._Value) -> bool:
    return isinstance(value, pw._Made) and value.by.qualified == WRAPPER


def _reduce(machine: pw.PickleMachine, callee: pw._Value, args: pw._Value, pos: int) -> pw._Value:
    made = machine.call(callee, "REDUCE", pos)
    items = args.value if isinstance(args, pw._Lit) and isinstance(args.value, tuple) else None
    if not isinstance(callee, pw._Ref) or items is None or not items:
        return made
    qualified = callee.target.qualified
    if qualified in _DTYPE and isinstance(items[0], pw._Str):
        return pw._Dtype(items[0].value)
    if qualified == _RECONSTRUCTOR and isinstance(items[0], pw._Ref):
        return pw._Made(items[0].target)  # copyreg._reconstructor(cls, object, None): cls.__new__
    if qualified == WRAPPER and not machine.nested:
        attributes = dict(_WRAPPER_DEFAULTS)
        attributes.update(zip(_WRAPPER_ARGS, items, strict=False))
        machine.wrappers[id(made)] = attributes
    return made


def _int(value: Any) -> int | None:
    if isinstance(value, pw._Lit) and isinstance(value.value, int):
        return int(value.value)
    return None


def _dtype_layout(dtype: pw._Dtype) -> tuple[int, bool] | str:
    """(itemsize, holds objects) of a numpy.dtype REDUCE, or why it cannot be known."""
    if not _DTYPE_SPEC.fullmatch(dtype.spec):
        return f"dtype {dtype.spec!r} is not a simple type code"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = np.dtype(dtype.spec)  # parses a type code; imports and runs nothing
    except (TypeError, ValueError) as exc:
        return f"dtype {dtype.spec!r} does not parse ({exc})"
    itemsize, state = parsed.itemsize, dtype.state or ()
    # numpy's dtype __setstate__: element size (index 5) for S/U/V, flags (index 7).
    elsize = _int(state[5]) if len(state) > 5 else None
    if parsed.kind in "SUV" and elsize is not None and elsize >= 0:
        itemsize = elsize
    flags = _int(state[7]) if len(state) > 7 else None
    return itemsize, parsed.kind == "O" or (flags is not None and bool(flags & 1))


def _layout(attributes: dict[Any, Any]) -> tuple[int, bool, bool] | str:
    """(data bytes, holds objects, has a padding byte) from the wrapper's attributes."""
    if "__state__" in attributes:
        return "the wrapper's state is not a literal dict"
    shape, dtype = attributes.get("shape"), attributes.get("dtype")
    dims = shape.value if isinstance(shape, pw._Lit) else None
    if not isinstance(dims, tuple) or not all(_int(d) is not None for d in dims):
        return "its shape is not a tuple of integer literals"
    if not isinstance(dtype, pw._Dtype):
        return "its dtype is not a numpy.dtype built from a string literal"
    layout = _dtype_layout(dtype)
    if isinstance(layout, str):
        return layout
    count = 1
    for dim in (_int(d) or 0 for d in dims):
        if not 0 <= dim < 2**63:
            return f"its shape has the dimension {dim}"
        count *= dim
    if count * layout[0] >= 2**63:
        return f"its shape {tuple(_int(d) for d in dims)} overflows"
    alignment = attributes.get("numpy_array_alignment_bytes", pw._Lit(None))
    padded = not (isinstance(alignment, pw._Lit) and alignment.value is None)
    return count * layout[0], layout[1], padded


def skip_array(machine: pw.PickleMachine, attributes: dict[Any, Any], pos: int) -> None:
    """Move the stream past the array data that follows a wrapper's BUILD at `pos`."""
    layout = _layout(attributes)
    start = machine.stream.tell()
    if isinstance(layout, str):
        _stop(
            machine,
            f"the size of the joblib array built at offset {pos} could not be determined: {layout}",
            pos,
        )
        return
    size, objects, padded = layout
    if objects:
        _nested(machine, start)
        return
    data = start
    if padded:
        pad = machine.stream.read(1)
        data = start + 1 + (pad[0] if pad else machine.limit)
    if data + size > machine.limit:
        machine.walk.exhausted = True
        remain = max(0, machine.limit - start)
        _stop(
            machine,
            f"the joblib array built at offset {pos} declares {size} data bytes "
            f"at offset {start}, but only {remain} bytes remain",
            start,
        )
        return
    machine.stream.seek(data + size)


def _nested(machine: pw.PickleMachine, start: int) -> None:
    """An object array: joblib loads a nested pickle here; its imports count like any other."""
    inner = pw.PickleMachine(machine.walk, machine.stream, machine.limit, nested=True)
    inner.run(machine.max_opcodes)
    if inner.error is not None:
        message, offset = inner.error
        _stop(
            machine, f"nested pickle of a joblib object array at offset {start}: {message}", offset
        )
    elif not inner.complete:
        machine.halted = True  # opcode limit: the walk reports it


def _stop(machine: pw.PickleMachine, message: str, offset: int) -> None:
    machine.fail(message, offset)
    machine.halted = True
