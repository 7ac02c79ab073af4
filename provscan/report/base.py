"""What do all report models share? Frozen, strict, and valid Unicode text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, field_validator

from provscan.visible import valid_data

JsonValue = Any  # evidence values are JSON-safe scalars, lists and dicts (checked below)


class ReportModel(BaseModel):
    """Every report model. Its text is valid Unicode, whatever the scanned files held.

    A name that is not UTF-8 (a file, a tar member, a pickle global, a metadata key) reaches
    Python as lone surrogates, which no output can encode. Every string field, and every
    string inside evidence and details (keys too), is made valid here, once, so that the
    JSON report, the BOM, SARIF, the audit reports and the terminal all render the same
    escaped text (visible.valid_text: ``\\xff`` for an undecodable byte).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    @field_validator("*", mode="after")
    @classmethod
    def _valid_text(cls, value: Any) -> Any:
        return valid_data(value)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        # model_copy does not validate: the update's text is made valid here instead.
        valid = {key: valid_data(value) for key, value in update.items()} if update else update
        return super().model_copy(update=valid, deep=deep)
