"""joblib's array layout: the raw bytes joblib.dump writes inside the pickle stream.

joblib.load unpickles with `NumpyUnpickler`, a subclass of pickle.py's `_Unpickler` whose
load_build, after the ordinary BUILD, replaces a `NumpyArrayWrapper` on top of the stack with
the array it reads straight from the file (joblib 1.6.0, joblib/numpy_pickle.py
`NumpyUnpickler.load_build` and `NumpyArrayWrapper.read_array`):

* object dtype: a nested pickle, read by a fresh pickle.py unpickler at the file's position;
* any other dtype: when the wrapper has a `numpy_array_alignment_bytes` attribute that is not
  None (joblib >= 1.2 writes it), one byte giving a padding length and that many bytes; then
  prod(shape) * dtype.itemsize bytes of data.

The bytes come from the file, not from pickle.py's frame buffer, so a BUILD inside a frame
reads the array after the frame: the walker (walk.py `Walker._joblib_build`) reads exactly
where joblib does, with the layout this module works out. The wrapper's
attributes are what its construction set (`__init__` arguments through REDUCE, OBJ or INST;
nothing through NEWOBJ or copyreg's reconstructors) updated by every BUILD's state, as
`object.__setstate__`-less classes get them. The dtype is rebuilt with numpy itself from the
builtin values the pickle gave (numpy parses them and runs no Python code); a wrapper whose size
cannot be worked out stops the walk with an error, since what follows cannot be located.
joblib <= 0.9's NDArrayWrapper keeps each array in a separate .npy file: nothing to skip here.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from provscan.collectors.serialization.pickle.values import Made

if TYPE_CHECKING:
    import numpy as np

# The names under which the unpickler can reach joblib's wrapper classes.
ARRAY_WRAPPERS = frozenset(
    {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    }
)
FILE_WRAPPERS = frozenset(
    {
        "joblib.numpy_pickle.NDArrayWrapper",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
    }
)
_INIT_ARGS = ("subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes")
_INIT_DEFAULTS = {"allow_mmap": False, "numpy_array_alignment_bytes": 16}
_DTYPE = "numpy.dtype"
_SIMPLE_DTYPE_ARG = (str,)


def _attributes(made: Made) -> dict[str, Any] | str:
    """The wrapper's instance attributes, or why they cannot be known."""
    attributes: dict[str, Any] = {}
    if made.init and isinstance(made.args, tuple) and made.args:
        attributes.update(_INIT_DEFAULTS)
        attributes.update(zip(_INIT_ARGS, made.args, strict=False))
    for state in made.state:
        slots = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
        for part in (state, slots):
            if part is None:
                continue
            if not isinstance(part, dict):
                return "the wrapper's state is not a dict"
            attributes.update({k: v for k, v in part.items() if isinstance(k, str)})
    return attributes


def _dtype(value: Any) -> np.dtype[Any] | str:
    # numpy is heavy and most pickles hold no joblib array: imported on the first one.
    import numpy as np

    if not isinstance(value, Made) or value.by.qualified != _DTYPE:
        return "its dtype is not a numpy.dtype"
    args = value.args if isinstance(value.args, tuple) else ()
    if not args or not isinstance(args[0], _SIMPLE_DTYPE_ARG):
        return "its dtype is not built from a type string"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dtype = np.dtype(args[0])  # parses a type code; imports and runs nothing
            for state in value.state:
                if isinstance(state, tuple) and all(_plain(s) for s in state):
                    dtype.__setstate__(state)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        return f"its dtype {args[0]!r} does not parse ({exc})"
    return dtype


def _plain(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return value is None or isinstance(value, (str, bytes, int, float))


def _layout(attributes: dict[str, Any]) -> tuple[int, bool, bool] | str:
    """(data bytes, holds objects, has a padding byte) from the wrapper's attributes."""
    shape = attributes.get("shape")
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    ):
        return "its shape is not a tuple of integers"
    dtype = _dtype(attributes.get("dtype"))
    if isinstance(dtype, str):
        return dtype
    count = 1
    for dim in shape:
        count *= dim
    if shape and not 0 <= count < 2**63:
        return f"its shape {tuple(shape)} has no int64 size"
    padded = attributes.get("numpy_array_alignment_bytes") is not None
    return count * dtype.itemsize, bool(dtype.hasobject), padded


def array_layout(made: Made) -> tuple[int, bool, bool] | str:
    """(data bytes, holds objects, has a padding byte) of the array a wrapper stands for, or
    why they cannot be known."""
    attributes = _attributes(made)
    return attributes if isinstance(attributes, str) else _layout(attributes)
