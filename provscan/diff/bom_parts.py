"""Where in a CycloneDX BOM are the model, its properties, its findings and its verdict?

Helpers for from_bom.py: each reads one part of the raw BOM JSON and checks its shape.
"""

from __future__ import annotations

import re
from typing import Any

from provscan.diff.fields import BadInput, arr, int_text, obj, opt_arr, opt_obj, opt_text, text
from provscan.diff.findings import add_finding
from provscan.diff.load import parse_json
from provscan.diff.snapshot import FindingGroup, FindingKey, Reason

MODEL_TYPE = "machine-learning-model"
FINDING_PROPERTY = "provscan:finding"
# claim:reason:<n> predicates are "<level> <rule>: <msg>" (provscan/emit/bom/attest.py).
_REASON_PREDICATE = re.compile(r"^(deny|review|warn) (\S+): ")
_VERDICT_SUMMARY = re.compile(r"^provscan verdict: (APPROVE|REVIEW|DENY)$")


def properties(value: Any, where: str) -> dict[str, str]:
    """The provscan:* properties of a node; one name given two values is an error."""
    result: dict[str, str] = {}
    for i, item in enumerate(opt_arr(value, where)):
        prop = obj(item, f"{where}[{i}]")
        name = text(prop.get("name"), f"{where}[{i}].name")
        if not name.startswith("provscan:"):
            continue
        # CycloneDX allows a property without a value; provscan never writes one.
        found = opt_text(prop.get("value"), f"{where}[{i}].value") or ""
        if result.get(name, found) != found:
            raise BadInput(f"{where}: property {name[:120]!r} has two different values")
        result[name] = found
    return result


def model_component(top: dict[str, Any]) -> dict[str, Any]:
    """The one machine-learning-model component at the top level of the BOM."""
    models = [
        obj(item, f"components[{i}]")
        for i, item in enumerate(opt_arr(top.get("components"), "components"))
    ]
    models = [c for c in models if c.get("type") == MODEL_TYPE]
    if len(models) != 1:
        found = "no" if not models else str(len(models))
        raise BadInput(
            f"components: {found} machine-learning-model components; provscan diff compares "
            "a BOM that describes one model"
        )
    return models[0]


def sha256_of(component: dict[str, Any], where: str) -> str | None:
    for i, item in enumerate(opt_arr(component.get("hashes"), f"{where}.hashes")):
        entry = obj(item, f"{where}.hashes[{i}]")
        if entry.get("alg") == "SHA-256":
            return text(entry.get("content"), f"{where}.hashes[{i}].content")
    return None


def tool_version(metadata: dict[str, Any]) -> str | None:
    """provscan's version from metadata.tools (1.5+ object form, or the legacy array)."""
    tools = metadata.get("tools")
    if isinstance(tools, dict):
        tools = tools.get("components")
    for i, item in enumerate(opt_arr(tools, "metadata.tools")):
        tool = obj(item, f"metadata.tools[{i}]")
        if tool.get("name") == "provscan":
            return opt_text(tool.get("version"), f"metadata.tools[{i}].version")
    return None


def findings(top: dict[str, Any], total: str) -> dict[FindingKey, FindingGroup]:
    """Findings from declarations.evidence, checked against the provscan:findings:total count."""
    declarations = opt_obj(top.get("declarations"), "declarations") or {}
    result: dict[FindingKey, FindingGroup] = {}
    seen = 0
    for i, item in enumerate(opt_arr(declarations.get("evidence"), "declarations.evidence")):
        where = f"declarations.evidence[{i}]"
        evidence = obj(item, where)
        if evidence.get("propertyName") != FINDING_PROPERTY:
            continue
        data = arr(evidence.get("data"), f"{where}.data")
        if not data:
            raise BadInput(f"{where}.data: a finding's evidence carries no data")
        contents = obj(
            obj(data[0], f"{where}.data[0]").get("contents"), f"{where}.data[0].contents"
        )
        attachment = obj(contents.get("attachment"), f"{where}.data[0].contents.attachment")
        content = text(attachment.get("content"), f"{where}.data[0].contents.attachment.content")
        try:
            finding = parse_json(content)
        except BadInput as exc:
            raise BadInput(f"{where}: the attached finding is {exc}") from exc
        add_finding(result, obj(finding, f"{where} (attached finding)"), f"{where}.finding")
        seen += 1
    expected = int_text(total, "provscan:findings:total")
    if seen != expected:
        raise BadInput(
            f"the model says {expected} findings (provscan:findings:total) but "
            f"declarations.evidence carries {seen}"
        )
    return result


def decision(top: dict[str, Any], props: dict[str, str]) -> str | None:
    """The verdict from provscan:verdict and the attestation summary; they must agree."""
    declarations = opt_obj(top.get("declarations"), "declarations") or {}
    attested = None
    for i, item in enumerate(
        opt_arr(declarations.get("attestations"), "declarations.attestations")
    ):
        summary = opt_text(obj(item, f"declarations.attestations[{i}]").get("summary"), "summary")
        match = _VERDICT_SUMMARY.match(summary or "")
        if match:
            attested = match.group(1).lower()
    stated = props.get("provscan:verdict")
    if stated is not None and attested is not None and stated != attested:
        raise BadInput(
            f"the model's provscan:verdict is {stated[:20]!r} but the attestation says {attested!r}"
        )
    return stated or attested


def has_claims(top: dict[str, Any]) -> bool:
    declarations = opt_obj(top.get("declarations"), "declarations") or {}
    return bool(opt_arr(declarations.get("claims"), "declarations.claims"))


def reasons(top: dict[str, Any]) -> frozenset[Reason]:
    """The policy results, from the claim:reason:<n> claims."""
    declarations = opt_obj(top.get("declarations"), "declarations") or {}
    result = set()
    for i, item in enumerate(opt_arr(declarations.get("claims"), "declarations.claims")):
        where = f"declarations.claims[{i}]"
        claim = obj(item, where)
        ref = claim.get("bom-ref")
        if not isinstance(ref, str) or not ref.startswith("claim:reason:"):
            continue
        predicate = text(claim.get("predicate"), f"{where}.predicate")
        match = _REASON_PREDICATE.match(predicate)
        if match is None:
            raise BadInput(f"{where}.predicate: not '<level> <rule>: <message>'")
        result.add(Reason(rule=match.group(2), level=match.group(1)))
    return frozenset(result)
