"""Does this .npy array hold Python objects, which numpy can only load by unpickling them?"""

from __future__ import annotations

from typing import Protocol

from provscan.collectors.serialization.pickle.scan import describe, scan_pickle_bytes
from provscan.files import ScanFile, open_scanned
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, located_finding

# numpy's own default; its header parser (ast.literal_eval) refuses anything larger.
MAX_NPY_HEADER = 10_000


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Counted:
    """Counts what numpy's header parser consumed, to give the pickle's offset."""

    def __init__(self, raw: _Readable) -> None:
        self.raw = raw
        self.offset = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self.raw.read(size)
        self.offset += len(data)
        return data


def scan_npy_stream(
    stream: _Readable, size: int | None, location: Location, limits: Limits
) -> list[Finding]:
    """Read a .npy header with numpy's own parser (as np.load does, also for .npz members);
    walk the pickle of an object array. `size` is the stream's length, None if unknown."""
    # Imported here: numpy costs a fifth of a second of start-up, and most models hold no .npy.
    from numpy.lib import format as npy_format

    counted = _Counted(stream)
    where = describe(location)
    try:
        version = npy_format.read_magic(counted)
        if version == (1, 0):
            _shape, _fortran, dtype = npy_format.read_array_header_1_0(
                counted, max_header_size=MAX_NPY_HEADER
            )
        else:
            _shape, _fortran, dtype = npy_format.read_array_header_2_0(
                counted, max_header_size=MAX_NPY_HEADER
            )
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises assorted errors (ValueError, SyntaxError, tokenize.TokenError) on hostile input
        message = f"{where}: numpy header cannot be read ({exc})"
        return [located_finding("SER-NUMPY-MALFORMED", Severity.HIGH, message, location)]
    if not dtype.hasobject:
        return []
    message = (
        f"{where}: object array (dtype {dtype}); loading it needs allow_pickle=True, "
        "which unpickles the data"
    )
    findings = [
        located_finding(
            "SER-NUMPY-OBJECT-ARRAY", Severity.HIGH, message, location, dtype=str(dtype)
        )
    ]
    start = counted.offset
    # Chunked: a hostile size must not allocate before the bytes exist.
    parts: list[bytes] = []
    left = limits.pickle_max
    while left > 0:
        piece = stream.read(min(left, 1024 * 1024))
        if not piece:
            break
        parts.append(piece)
        left -= len(piece)
    data = b"".join(parts)
    if size is not None:
        total = size - start
    else:
        total = len(data) + 1 if left == 0 and stream.read(1) else len(data)
    # The object array's elements follow the header as one pickle stream.
    at = location.model_copy(update={"offset": start})
    findings.extend(scan_pickle_bytes(data, at, limits, total_size=total))
    return findings


def scan_numpy(file: ScanFile, limits: Limits) -> list[Finding]:
    """Scan a .npy file on disk."""
    with open_scanned(file) as handle:
        return scan_npy_stream(handle, file.size, Location(path=file.rel), limits)
