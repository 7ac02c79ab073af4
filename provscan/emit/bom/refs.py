"""Are a BOM's bom-refs unique, and does every reference point at one? (JSON Schema cannot say.)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any


def bom_refs(node: Any) -> Iterator[str]:
    """Every bom-ref value anywhere in a BOM document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "bom-ref" and isinstance(value, str):
                yield value
            else:
                yield from bom_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from bom_refs(item)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _references(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, ref) for each in-BOM reference provscan emits: dependencies and attestations."""
    for i, dep in enumerate(_as_list(doc.get("dependencies"))):
        dep = _as_dict(dep)
        yield f"dependencies[{i}].ref", dep.get("ref")
        for ref in _as_list(dep.get("dependsOn")):
            yield f"dependencies[{i}].dependsOn", ref
    for s, standard in enumerate(_as_list(_as_dict(doc.get("definitions")).get("standards"))):
        for r, req in enumerate(_as_list(_as_dict(standard).get("requirements"))):
            if "parent" in _as_dict(req):
                yield f"definitions.standards[{s}].requirements[{r}].parent", req["parent"]
    decl = _as_dict(doc.get("declarations"))
    for c, claim in enumerate(_as_list(decl.get("claims"))):
        claim = _as_dict(claim)
        if "target" in claim:
            yield f"declarations.claims[{c}].target", claim["target"]
        for key in ("evidence", "counterEvidence", "mitigationStrategies"):
            for ref in _as_list(claim.get(key)):
                yield f"declarations.claims[{c}].{key}", ref
    for a, attestation in enumerate(_as_list(decl.get("attestations"))):
        attestation = _as_dict(attestation)
        if "assessor" in attestation:
            yield f"declarations.attestations[{a}].assessor", attestation["assessor"]
        for m, entry in enumerate(_as_list(attestation.get("map"))):
            entry = _as_dict(entry)
            where = f"declarations.attestations[{a}].map[{m}]"
            if "requirement" in entry:
                yield f"{where}.requirement", entry["requirement"]
            for key in ("claims", "counterClaims"):
                for ref in _as_list(entry.get(key)):
                    yield f"{where}.{key}", ref


def reference_errors(doc: Any) -> list[str]:
    """Duplicate bom-refs and references that match no bom-ref (BOM-Links are not checked)."""
    if not isinstance(doc, dict):
        return []
    counts = Counter(bom_refs(doc))
    errors = [f"bom-ref {ref!r} is used {n} times" for ref, n in sorted(counts.items()) if n > 1]
    for where, ref in _references(doc):
        # urn:cdx: refs point into other BOMs and cannot be resolved here.
        if isinstance(ref, str) and not ref.startswith("urn:cdx:") and ref not in counts:
            errors.append(f"{where}: reference {ref!r} matches no bom-ref")
    return errors
