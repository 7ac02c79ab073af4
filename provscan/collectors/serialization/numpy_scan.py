"""Does this .npy array hold Python objects, which numpy can only load by unpickling them?"""

from __future__ import annotations

from numpy.lib import format as npy_format

from provscan.collectors.base import ScanFile
from provscan.collectors.serialization.pickle_scan import scan_pickle_bytes
from provscan.limits import Limits
from provscan.report import Finding, Location, Severity, file_finding

# numpy's own default; its header parser (ast.literal_eval) refuses anything larger.
MAX_NPY_HEADER = 10_000


def scan_numpy(file: ScanFile, limits: Limits) -> list[Finding]:
    """Read the .npy header with numpy's own parser; walk the pickle of an object array."""
    with file.path.open("rb") as handle:
        try:
            version = npy_format.read_magic(handle)
            if version == (1, 0):
                _shape, _fortran, dtype = npy_format.read_array_header_1_0(
                    handle, max_header_size=MAX_NPY_HEADER
                )
            else:
                _shape, _fortran, dtype = npy_format.read_array_header_2_0(
                    handle, max_header_size=MAX_NPY_HEADER
                )
        except ImportError:
            raise
        except Exception as exc:  # noqa: BLE001 - numpy's header parser raises assorted errors (ValueError, SyntaxError, tokenize.TokenError) on hostile input
            return [
                file_finding(
                    "SER-NUMPY-MALFORMED",
                    Severity.HIGH,
                    file.rel,
                    f"{file.rel}: numpy header cannot be read ({exc})",
                )
            ]
        if not dtype.hasobject:
            return []
        findings = [
            file_finding(
                "SER-NUMPY-OBJECT-ARRAY",
                Severity.HIGH,
                file.rel,
                f"{file.rel}: object array (dtype {dtype}); loading it needs allow_pickle=True, which unpickles the data",
                dtype=str(dtype),
            )
        ]
        start = handle.tell()
        data = handle.read(limits.pickle_max)
    # The object array's elements follow the header as one pickle stream.
    location = Location(path=file.rel, offset=start)
    findings.extend(scan_pickle_bytes(data, location, limits, total_size=file.size - start))
    return findings
