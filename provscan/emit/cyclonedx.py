"""What does the CycloneDX 1.6 AI-BOM of a scanned model say, and is it schema-valid?"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion

from provscan.emit.bom.attest import declarations, definitions
from provscan.emit.bom.model import model_card, model_component
from provscan.emit.bom.refs import bom_refs, reference_errors
from provscan.emit.bom.report import report_component
from provscan.emit.bom.schema import schema_validator
from provscan.emit.bom.values import model_ref, props
from provscan.errors import OutputError
from provscan.report import Report

__all__ = ["SCHEMA_VERSION", "render_cyclonedx", "validate_cyclonedx"]

SCHEMA_VERSION = SchemaVersion.V1_6
# Fixed namespace for BOM serial numbers: the same report always gets the same serial.
_SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://provscan.dev/cyclonedx/serial")
# Top-level keys in the order a reader expects; the library emits them alphabetically.
_TOP_LEVEL_ORDER = (
    "$schema",
    "bomFormat",
    "specVersion",
    "serialNumber",
    "version",
    "metadata",
    "components",
    "dependencies",
    "definitions",
    "declarations",
)
# cyclonedx-python-lib silently renames a repeated bom-ref to a random 'BomRef.<n>.<n>';
# every ref provscan sets has a prefix of its own, so this marks a repeat.
_RENAMED_REF_PREFIX = "BomRef."
_ERRORS_SHOWN = 5
# jsonschema quotes the offending instance, which can be a whole component.
_MESSAGE_MAX = 300


def _utc(moment: datetime) -> datetime:
    """A timezone-aware timestamp (a naive one is taken as UTC), as CycloneDX requires."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def serial_number(report: Report) -> uuid.UUID:
    """uuid5 over root digest, scan time, tool version and everything else the BOM shows."""
    # The report and licence texts are hashed too, so two different BOMs of one scan
    # (with and without a verdict, say) never share a serial number.
    content = hashlib.sha256(
        json.dumps(
            [report.model_dump(mode="json"), dict(report.licence_texts)], sort_keys=True
        ).encode()
    ).hexdigest()
    root = report.manifest.root_digest if report.manifest is not None else "no-manifest"
    key = "|".join((root, _utc(report.scanned_at).isoformat(), report.tool.version, content))
    return uuid.uuid5(_SERIAL_NAMESPACE, key)


def _build_bom(report: Report) -> Bom:
    """Everything cyclonedx-python-lib can model itself."""
    bom = Bom(serial_number=serial_number(report))
    bom.metadata.timestamp = _utc(report.scanned_at)
    bom.metadata.tools.components.add(
        Component(
            type=ComponentType.APPLICATION,
            bom_ref=f"tool:{report.tool.name}",
            name=report.tool.name,
            version=report.tool.version,
        )
    )
    parameters = report.parameters
    pairs: list[tuple[str, object]] = [
        ("provscan:report:schema_version", report.schema_version),
        ("provscan:target:kind", report.target.kind.value),
        ("provscan:hash:algorithm", parameters.hash_algorithm),
        ("provscan:hash:serialization", parameters.serialization),
        ("provscan:hash:shard_size", parameters.shard_size),
    ]
    hub = report.target.hub
    if hub is not None:
        pairs += [
            ("provscan:hub:mode", hub.mode),
            ("provscan:hub:requested_revision", hub.requested_revision),
            ("provscan:hub:files", hub.files),
            ("provscan:hub:bytes", hub.bytes),
        ]
    pairs += [(f"provscan:step:{step.name}", step.status.value) for step in report.steps]
    bom.metadata.properties.update(props(pairs))
    bom.components.add(model_component(report))
    if report.verdict is not None:
        bom.definitions = definitions(report.verdict)
    return bom


def _add_unsupported_parts(doc: dict[str, Any], report: Report) -> dict[str, Any]:
    """Add what the library cannot model (modelCard, declarations, the embedded report) to
    its JSON output."""
    ref = model_ref(report)
    card = model_card(report)
    if card is not None:
        for component in doc["components"]:
            if component.get("bom-ref") == ref:
                component["modelCard"] = card
    # After the model: readers that take the first component for the model still find it.
    doc["components"].append(report_component(report))
    decl = declarations(report, ref, _utc(report.scanned_at))
    if decl is not None:
        doc["declarations"] = decl
    ordered = {key: doc[key] for key in _TOP_LEVEL_ORDER if key in doc}
    ordered.update((key, value) for key, value in doc.items() if key not in ordered)
    return ordered


def render_cyclonedx(report: Report) -> str:
    """The CycloneDX 1.6 AI-BOM of the report as JSON; raises OutputError if it is not valid.

    A function of the report alone: the licence files' texts the scan read
    (`Report.licence_texts`) are attached to licences the card declares that are not SPDX ids.
    """
    bom = _build_bom(report)
    doc = json.loads(JsonV1Dot6(bom).output_as_string())
    text = json.dumps(_add_unsupported_parts(doc, report), indent=2, ensure_ascii=False)
    errors = [
        f"bom-ref repeated in the report (renamed to {ref!r} by the library)"
        for ref in bom_refs(doc)
        if ref.startswith(_RENAMED_REF_PREFIX)
    ]
    errors += validate_cyclonedx(text)
    if errors:
        shown = "\n  ".join(errors[:_ERRORS_SHOWN])
        more = (
            f"\n  ... and {len(errors) - _ERRORS_SHOWN} more" if len(errors) > _ERRORS_SHOWN else ""
        )
        raise OutputError(
            f"the CycloneDX {SCHEMA_VERSION.to_version()} BOM provscan built is invalid "
            f"and was not written:\n  {shown}{more}",
            remedy="this is a provscan bug; please report it together with the scan report JSON",
        )
    return text


def validate_cyclonedx(text: str) -> list[str]:
    """Schema errors (CycloneDX 1.6 JSON) and bom-ref errors in a BOM; empty when it is valid."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    errors: list[str] = []
    for error in schema_validator(SCHEMA_VERSION).iter_errors(doc):
        path, message = str(error.json_path), str(error.message)
        if len(message) > _MESSAGE_MAX:
            message = message[: _MESSAGE_MAX - 3] + "..."
        errors.append(f"{path}: {message}")
    return errors + reference_errors(doc)
