"""What snapshot does a provscan JSON report (read as raw JSON) give?"""

from __future__ import annotations

from typing import Any

from provscan.diff.fields import (
    BadInput,
    arr,
    joined,
    obj,
    opt_arr,
    opt_bool,
    opt_int,
    opt_obj,
    opt_text,
    text,
    texts,
)
from provscan.diff.findings import add_finding
from provscan.diff.load import check_schema_major
from provscan.diff.snapshot import (
    Ancestor,
    FileFacts,
    FindingGroup,
    FindingKey,
    InputKind,
    Licences,
    Lineage,
    ModelFacts,
    ProbeCandidate,
    Probes,
    Reason,
    Section,
    SignatureFacts,
    Snapshot,
    Target,
    Verdict,
)

# The emitter writes concluded "unknown" when nothing is concluded; both kinds drop it.
UNKNOWN_LICENCE = "unknown"


def report_snapshot(document: Any, path: str) -> Snapshot:
    top = obj(document, "the report")
    check_schema_major(top.get("schema_version"), "schema_version")
    tool = obj(top.get("tool"), "tool")
    missing: dict[Section, str] = {}
    licences = _licences(opt_obj(top.get("licence"), "licence"))
    if licences is None:
        missing[Section.LICENCES] = "the report has no licence facts (licence step did not run)"
    signatures = _signatures(opt_obj(top.get("signatures"), "signatures"))
    if signatures is None:
        missing[Section.SIGNATURES] = "the report has no signature facts (step did not run)"
    return Snapshot(
        path=path,
        kind=InputKind.REPORT,
        tool_version=opt_text(tool.get("version"), "tool.version"),
        scanned_at=opt_text(top.get("scanned_at"), "scanned_at"),
        target=_target(top),
        files=_files(arr(top.get("files"), "files")),
        licences=licences,
        lineage=_lineage(top),
        findings=_findings(opt_arr(top.get("findings"), "findings")),
        signatures=signatures,
        verdict=_verdict(opt_obj(top.get("verdict"), "verdict")),
        model=_model(opt_obj(top.get("model"), "model")),
        probes=_probes(opt_obj(top.get("probes"), "probes")),
        steps=_steps(opt_arr(top.get("steps"), "steps")),
        missing=missing,
    )


def _target(top: dict[str, Any]) -> Target:
    target = obj(top.get("target"), "target")
    name = text(target.get("name"), "target.name")
    repo_id = opt_text(target.get("repo_id"), "target.repo_id")
    revision = opt_text(target.get("revision"), "target.revision")
    parts = repo_id.split("/") if repo_id else []
    # The same purl the BOM emitter writes, so a report and a BOM compare equal.
    purl = (
        f"pkg:huggingface/{parts[0]}/{parts[1]}@{revision}"
        if len(parts) == 2 and all(parts) and revision
        else None
    )
    manifest = opt_obj(top.get("manifest"), "manifest")
    digest = opt_text(manifest.get("root_digest"), "manifest.root_digest") if manifest else None
    return Target(name=repo_id or name, revision=revision, purl=purl, manifest_digest=digest)


def _files(entries: list[Any]) -> dict[str, FileFacts]:
    files: dict[str, FileFacts] = {}
    for i, item in enumerate(entries):
        where = f"files[{i}]"
        entry = obj(item, where)
        path = text(entry.get("path"), f"{where}.path")
        if path in files:
            raise BadInput(f"{where}: the file {path[:200]!r} is listed twice")
        files[path] = FileFacts(
            sha256=opt_text(entry.get("sha256"), f"{where}.sha256"),
            size=opt_int(entry.get("size"), f"{where}.size"),
            format=opt_text(entry.get("format"), f"{where}.format"),
            role=opt_text(entry.get("role"), f"{where}.role"),
        )
    return files


def _licences(facts: dict[str, Any] | None) -> Licences | None:
    if facts is None:
        return None
    labels: dict[str, str] = {}
    for i, item in enumerate(opt_arr(facts.get("terms"), "licence.terms")):
        terms = obj(item, f"licence.terms[{i}]")
        key = text(terms.get("key"), f"licence.terms[{i}].key")
        label = opt_text(terms.get("spdx"), f"licence.terms[{i}].spdx") or opt_text(
            terms.get("name"), f"licence.terms[{i}].name"
        )
        if label:
            labels.setdefault(key, label)
    concluded = frozenset(texts(facts.get("concluded"), "licence.concluded"))
    return Licences(
        concluded=concluded - {UNKNOWN_LICENCE},
        declared=frozenset(texts(facts.get("declared"), "licence.declared")),
        inherited=frozenset(texts(facts.get("inherited"), "licence.inherited")),
        labels=tuple(sorted(labels.items())),
    )


def _lineage(top: dict[str, Any]) -> Lineage:
    origin = opt_obj(top.get("origin"), "origin")
    if origin is None:
        # As the BOM emitter does: without the origin step, the card's claims, unchecked.
        card = opt_obj(top.get("card"), "card")
        bases = texts(card.get("base_models"), "card.base_models") if card else ()
        return Lineage(tuple(Ancestor(b, "unknown") for b in bases), frozenset())
    ancestors = []
    for i, item in enumerate(opt_arr(origin.get("lineage"), "origin.lineage")):
        edge = obj(item, f"origin.lineage[{i}]")
        ancestors.append(
            Ancestor(
                base=text(edge.get("base"), f"origin.lineage[{i}].base"),
                relation=opt_text(edge.get("relation"), f"origin.lineage[{i}].relation")
                or "unknown",
            )
        )
    roots = frozenset(texts(origin.get("root_models"), "origin.root_models"))
    return Lineage(tuple(ancestors), roots)


def _findings(entries: list[Any]) -> dict[FindingKey, FindingGroup]:
    findings: dict[FindingKey, FindingGroup] = {}
    for i, item in enumerate(entries):
        add_finding(findings, obj(item, f"findings[{i}]"), f"findings[{i}]")
    return findings


def _signatures(facts: dict[str, Any] | None) -> dict[str, SignatureFacts] | None:
    if facts is None:
        return None
    result: dict[str, SignatureFacts] = {}
    for i, item in enumerate(opt_arr(facts.get("signatures"), "signatures.signatures")):
        where = f"signatures.signatures[{i}]"
        sig = obj(item, where)
        path = text(sig.get("path"), f"{where}.path")
        if path in result:
            raise BadInput(f"{where}: the signature {path[:200]!r} is listed twice")
        signer = opt_obj(sig.get("signer"), f"{where}.signer") or {}
        who = [
            opt_text(signer.get(k), f"{where}.signer.{k}")
            for k in ("identity", "certificate_subject", "key_fingerprint")
        ]
        result[path] = SignatureFacts(
            status=opt_text(sig.get("status"), f"{where}.status"),
            integrity=opt_text(sig.get("integrity"), f"{where}.integrity"),
            signer=next((w for w in who if w), None),
        )
    return result


def _verdict(verdict: dict[str, Any] | None) -> Verdict | None:
    if verdict is None:
        return None
    reasons = set()
    for i, item in enumerate(opt_arr(verdict.get("reasons"), "verdict.reasons")):
        reason = obj(item, f"verdict.reasons[{i}]")
        reasons.add(
            Reason(
                rule=text(reason.get("rule"), f"verdict.reasons[{i}].rule"),
                level=text(reason.get("level"), f"verdict.reasons[{i}].level"),
            )
        )
    policy = opt_obj(verdict.get("policy"), "verdict.policy") or {}
    return Verdict(
        decision=text(verdict.get("decision"), "verdict.decision"),
        reasons=frozenset(reasons),
        policy_digest=opt_text(policy.get("digest"), "verdict.policy.digest"),
    )


def _model(facts: dict[str, Any] | None) -> ModelFacts:
    if facts is None:
        return ModelFacts()

    def count(key: str) -> str | None:
        value = opt_int(facts.get(key), f"model.{key}")
        return None if value is None else str(value)

    return ModelFacts(
        architectures=joined(texts(facts.get("architectures"), "model.architectures")),
        model_type=opt_text(facts.get("model_type"), "model.model_type"),
        parameter_count=count("parameter_count"),
        config_parameter_count=count("config_parameter_count"),
        tensor_count=count("tensor_count"),
        weight_dtypes=joined(texts(facts.get("weight_dtypes"), "model.weight_dtypes")),
        config_dtype=opt_text(facts.get("config_dtype"), "model.config_dtype"),
    )


def _probes(facts: dict[str, Any] | None) -> Probes | None:
    if facts is None:
        return None
    engine = obj(facts.get("engine"), "probes.engine")
    candidates = set()
    for i, item in enumerate(opt_arr(facts.get("candidates"), "probes.candidates")):
        where = f"probes.candidates[{i}]"
        candidate = obj(item, where)
        candidates.add(
            ProbeCandidate(
                status=text(candidate.get("status"), f"{where}.status"),
                family=text(candidate.get("family"), f"{where}.family"),
                trigger=opt_text(candidate.get("trigger"), f"{where}.trigger"),
            )
        )
    suite = f"{text(facts.get('suite_id'), 'probes.suite_id')} {text(facts.get('suite_version'), 'probes.suite_version')}"
    return Probes(
        suite=suite,
        engine=text(engine.get("name"), "probes.engine.name"),
        partial=bool(opt_bool(facts.get("partial"), "probes.partial")),
        candidates=frozenset(candidates),
    )


def _steps(entries: list[Any]) -> dict[str, str]:
    steps: dict[str, str] = {}
    for i, item in enumerate(entries):
        step = obj(item, f"steps[{i}]")
        steps[text(step.get("name"), f"steps[{i}].name")] = text(
            step.get("status"), f"steps[{i}].status"
        )
    return steps
