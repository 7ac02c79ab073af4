"""Which errors can stop a scan, and what should the user do about each?"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes. Documented in README.md; tested in tests/cli/test_cli.py."""

    APPROVE = 0
    DENY = 1
    USAGE = 2
    INCOMPLETE = 3  # could not complete: fail closed
    REVIEW = 4

    @classmethod
    def of(cls, decision: str) -> ExitCode:
        """The exit code of a verdict (its value: approve, review, deny); anything else is
        never an approval."""
        return {"approve": cls.APPROVE, "review": cls.REVIEW, "deny": cls.DENY}.get(
            decision, cls.INCOMPLETE
        )


class ProvscanError(Exception):
    """An error with a message for the user and a remedy; maps to an exit code."""

    exit_code: ExitCode = ExitCode.INCOMPLETE

    def __init__(self, message: str, remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return self.message if not self.remedy else f"{self.message}\n  hint: {self.remedy}"

    def one_line(self) -> str:
        """The message and remedy on one line: for a report field or a table cell, where a
        line break would be escaped as if it came from a hostile file."""
        return self.message if not self.remedy else f"{self.message}; hint: {self.remedy}"


class UsageError(ProvscanError):
    """The command line or a config file asks for something impossible."""

    exit_code = ExitCode.USAGE


class TargetError(ProvscanError):
    """The target cannot be scanned at all (missing, empty, not a model)."""


class ConfigError(UsageError):
    """The provscan.toml (or --config) file is unreadable or malformed."""


class PolicyError(ProvscanError):
    """The policy engine crashed, timed out, or returned something malformed."""


class OutputError(ProvscanError):
    """An output (JSON, BOM) could not be produced or written."""
