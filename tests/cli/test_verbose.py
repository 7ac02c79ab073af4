"""`provscan -v`: an error's message, then the errors underneath it; without -v, one line."""

from __future__ import annotations

from pathlib import Path


def _not_utf8(tmp_path: Path) -> Path:
    listing = tmp_path / "models.txt"
    listing.write_bytes(b"\xff\xfe\xfa model\n")
    return listing


def test_without_verbose_an_error_is_one_line(cli, tmp_path: Path) -> None:
    result = cli("check", "--targets-from", _not_utf8(tmp_path))
    assert result.code == 2
    assert result.err.splitlines() == [
        f"provscan: error: --targets-from {tmp_path / 'models.txt'}: not UTF-8 text (byte 0)"
    ]


def test_verbose_prints_the_cause_chain(cli, tmp_path: Path) -> None:
    result = cli("-v", "check", "--targets-from", _not_utf8(tmp_path))
    assert result.code == 2
    lines = result.err.splitlines()
    assert lines[0].startswith("provscan: error: --targets-from ")
    assert lines[1].startswith("  caused by: UnicodeDecodeError: 'utf-8' codec can't decode")
    assert "The above exception was the direct cause of the following exception" in result.err


def test_verbose_changes_nothing_when_all_goes_well(cli) -> None:
    assert cli("--verbose", "--version").code == 0
