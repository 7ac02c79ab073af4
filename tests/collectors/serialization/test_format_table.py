"""Does every format the inventory can assign have a serialization scanner, or a stated reason
to need none?"""

from __future__ import annotations

from provscan.collectors.serialization.scan import NEEDS_TARGET, NO_FORMAT_SCANNER, SCANNERS
from provscan.report import FileFormat


def test_every_format_is_scanned_or_said_to_need_no_scanner() -> None:
    # A new FileFormat fails here until it gets a scanner or a line in NO_FORMAT_SCANNER.
    covered = set(SCANNERS) | NEEDS_TARGET | NO_FORMAT_SCANNER
    assert sorted(f.value for f in set(FileFormat) - covered) == []


def test_no_format_is_both_scanned_and_said_to_need_no_scanner() -> None:
    assert not (set(SCANNERS) | NEEDS_TARGET) & NO_FORMAT_SCANNER
    assert not set(SCANNERS) & NEEDS_TARGET
