"""Is the CycloneDX AI-BOM valid, complete and stable for the reports users will render?"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from fixtures.models import build_demo_model
from provscan.collectors.licence import collect_licence
from provscan.collectors.origin import collect_origin
from provscan.emit.bom.schema import _canonical
from provscan.emit.cyclonedx import render_cyclonedx, validate_cyclonedx
from provscan.errors import OutputError
from provscan.limits import DEFAULT_LIMITS
from provscan.pipeline import ScanOptions, scan
from provscan.report import (
    SCHEMA_VERSION,
    CardFacts,
    Decision,
    FileEntry,
    FileFormat,
    FileRole,
    Finding,
    HubFetch,
    LicenceFacts,
    Location,
    OriginFacts,
    ProbeBudget,
    ProbeCandidate,
    ProbeEngine,
    ProbeFacts,
    Reason,
    RecordCheck,
    Report,
    Severity,
    SignatureCheck,
    SignatureFacts,
    SignatureStatus,
    Signer,
    Step,
    StepStatus,
    TlogEntry,
    UncoveredFile,
)
from tests.emit.reports import FILES, LLAMA_TEXT, make_report
from tests.emit.reports import sha as _sha

DENY_FINDINGS = (
    Finding(
        rule_id="SER-PICKLE-DANGEROUS-GLOBAL",
        severity=Severity.CRITICAL,
        message="pickle imports os.system",
        location=Location(path="pytorch_model.bin", member="archive/data.pkl", offset=12),
        evidence={"global": "os.system"},
    ),
    Finding(
        rule_id="LIC-NONCOMMERCIAL",
        severity=Severity.HIGH,
        message="licence forbids commercial use",
    ),
    Finding(rule_id="ORG-UNKNOWN", severity=Severity.LOW, message="publisher unknown"),
)
DENY_REASONS = (
    Reason(rule="SER-PICKLE-DANGEROUS-GLOBAL", level="deny", msg="unsafe pickle global os.system"),
    Reason(rule="LIC-NONCOMMERCIAL", level="review", msg="non-commercial licence"),
    Reason(
        rule="POL-STEP-FAILED",
        level="deny",
        msg="required step signatures failed",
        details={"step": "signatures"},
    ),
    Reason(rule="ORG-UNKNOWN", level="warn", msg="publisher unknown"),
)
DENY_STEPS = (
    Step(name="inventory", status=StepStatus.COMPLETED),
    Step(name="signatures", status=StepStatus.FAILED, reason="bundle unreadable"),
    Step(name="probes", status=StepStatus.SKIPPED, reason="not asked for"),
)

REVISION = "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"


def deny_report() -> Report:
    return make_report(
        decision=Decision.DENY, reasons=DENY_REASONS, findings=DENY_FINDINGS, steps=DENY_STEPS
    )


def llama_card() -> CardFacts:
    return CardFacts(
        path="README.md",
        licenses=("other",),
        license_name="llama3",
        license_link="LICENSE",
        base_models=("meta-llama/Meta-Llama-3-8B", "gpt2"),
        tags=("llama", "text-generation"),
        pipeline_tag="text-generation",
        library_name="transformers",
    )


CASES: dict[str, Any] = {
    "approve-clean": lambda: make_report(),
    "deny": deny_report,
    "inspect-no-verdict": lambda: make_report(decision=None, findings=DENY_FINDINGS),
    "inspect-nothing": lambda: make_report(decision=None),
    "review": lambda: make_report(
        decision=Decision.REVIEW, reasons=(DENY_REASONS[1],), findings=(DENY_FINDINGS[1],)
    ),
    "spdx-card": lambda: make_report(
        card=CardFacts(path="README.md", licenses=("apache-2.0", "mit"))
    ),
    "llama-hf": lambda: make_report(
        card=llama_card(), repo_id="acme/tiny-llama", revision=REVISION
    ),
    "no-manifest-no-facts": lambda: make_report().model_copy(
        update={"manifest": None, "model": None}
    ),
    "no-files": lambda: make_report(files=()),
    "kitchen-sink": lambda: _kitchen_sink(),
}


def with_texts(report: Report, licence_texts: dict[str, str]) -> Report:
    """The report as if the scan had read these licence files' texts."""
    return report.model_copy(update={"licence_texts": licence_texts})


def render(report: Report, licence_texts: dict[str, str] | None = None) -> dict[str, Any]:
    if licence_texts is not None:
        report = with_texts(report, licence_texts)
    doc: dict[str, Any] = json.loads(render_cyclonedx(report))
    return doc


def model_of(doc: dict[str, Any]) -> dict[str, Any]:
    models: list[dict[str, Any]] = [
        c for c in doc["components"] if c["type"] == "machine-learning-model"
    ]
    assert len(models) == 1
    return models[0]


def prop(node: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in node.get("properties", []) if p["name"] == name]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_case_is_valid_cyclonedx_1_6(case: str) -> None:
    text = render_cyclonedx(with_texts(CASES[case](), {"LICENSE": LLAMA_TEXT}))
    assert validate_cyclonedx(text) == []
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6"
    assert doc["bomFormat"] == "CycloneDX"


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_is_byte_identical_across_runs(case: str) -> None:
    assert render_cyclonedx(CASES[case]()) == render_cyclonedx(CASES[case]())


def test_serial_number_and_timestamp_come_from_the_report() -> None:
    approve, deny = render(make_report()), render(deny_report())
    assert approve["metadata"]["timestamp"].startswith("2025-06-01T12:00:00")
    assert approve["serialNumber"].startswith("urn:uuid:")
    assert approve["serialNumber"] != deny["serialNumber"]
    tools = approve["metadata"]["tools"]["components"]
    assert [(t["name"], t["version"]) for t in tools] == [("provscan", "0.1.0")]


def test_model_component_has_model_card_and_manifest_digest() -> None:
    model = model_of(render(make_report(card=llama_card())))
    assert model["bom-ref"] == "model:tiny-llama"
    assert model["hashes"] == [{"alg": "SHA-256", "content": _sha("root")}]
    assert prop(model, "provscan:manifest:standard") == ["openssf-model-signing/v1.0"]
    params = model["modelCard"]["modelParameters"]
    assert params == {
        "task": "text-generation",
        "architectureFamily": "llama",
        "modelArchitecture": "LlamaForCausalLM",
    }
    assert prop(model["modelCard"], "provscan:model:parameter_count") == ["1024"]
    assert prop(model["modelCard"], "provscan:model:weight_dtypes") == ["BF16"]


def test_unknown_model_facts_are_left_out() -> None:
    model = model_of(render(CASES["no-manifest-no-facts"]()))
    assert "modelCard" not in model
    assert "hashes" not in model
    assert "purl" not in model and "version" not in model


def test_every_file_is_a_nested_file_component_with_its_sha256() -> None:
    model = model_of(render(make_report()))
    nested = {c["name"]: c for c in model["components"]}
    assert set(nested) == {f.path for f in FILES}
    for entry in FILES:
        component = nested[entry.path]
        assert component["type"] == "file"
        assert component["hashes"] == [{"alg": "SHA-256", "content": entry.sha256}]
        assert prop(component, "provscan:file:format") == [entry.format.value]
        assert prop(component, "provscan:file:role") == [entry.role.value]
        assert prop(component, "provscan:file:size") == [str(entry.size)]


def test_spdx_licences_come_out_as_spdx_ids() -> None:
    model = model_of(render(CASES["spdx-card"]()))
    assert sorted(lic["license"]["id"] for lic in model["licenses"]) == ["Apache-2.0", "MIT"]
    assert all(lic["license"]["acknowledgement"] == "declared" for lic in model["licenses"])


def test_non_spdx_licence_has_name_text_and_resolved_link() -> None:
    report = CASES["llama-hf"]()
    model = model_of(
        render(report, licence_texts={"LICENSE": LLAMA_TEXT, "sub/LICENSE.old": "old"})
    )
    [entry] = model["licenses"]
    lic = entry["license"]
    assert "id" not in lic
    assert lic["name"] == "Meta Llama 3 Community License Agreement"  # the card said 'llama3'
    assert lic["acknowledgement"] == "declared"
    link = f"https://huggingface.co/acme/tiny-llama/blob/{REVISION}/LICENSE"
    assert lic["url"] == link
    assert {"type": "license", "url": link} in model["externalReferences"]


def test_hf_repo_gives_purl_version_and_distribution_link() -> None:
    model = model_of(render(CASES["llama-hf"]()))
    assert model["bom-ref"] == "model:acme/tiny-llama"
    assert (model["group"], model["name"], model["version"]) == ("acme", "tiny-llama", REVISION)
    assert model["purl"] == f"pkg:huggingface/acme/tiny-llama@{REVISION}"
    assert {"type": "distribution", "url": "https://huggingface.co/acme/tiny-llama"} in model[
        "externalReferences"
    ]


def test_base_models_are_pedigree_ancestors() -> None:
    model = model_of(render(CASES["llama-hf"]()))
    ancestors = {a["bom-ref"]: a for a in model["pedigree"]["ancestors"]}
    assert set(ancestors) == {"model:meta-llama/Meta-Llama-3-8B", "model:gpt2"}
    llama = ancestors["model:meta-llama/Meta-Llama-3-8B"]
    assert llama["type"] == "machine-learning-model"
    assert llama["purl"] == "pkg:huggingface/meta-llama/Meta-Llama-3-8B"
    assert "purl" not in ancestors["model:gpt2"]


@pytest.mark.parametrize(
    ("decision", "score", "summary"),
    [
        (Decision.APPROVE, 1.0, "provscan verdict: APPROVE"),
        (Decision.REVIEW, 0.5, "provscan verdict: REVIEW"),
        (Decision.DENY, 0.0, "provscan verdict: DENY"),
    ],
)
def test_attestation_score_and_summary_match_the_decision(
    decision: Decision, score: float, summary: str
) -> None:
    doc = render(
        make_report(
            decision=decision, reasons=DENY_REASONS if decision is not Decision.APPROVE else ()
        )
    )
    [attestation] = doc["declarations"]["attestations"]
    assert attestation["summary"] == summary
    admission = attestation["map"][0]
    assert admission["requirement"] == "requirement:ADMISSION"
    assert admission["conformance"]["score"] == score
    assert prop(model_of(doc), "provscan:verdict") == [decision.value]


def test_deny_records_rules_claims_and_evidence() -> None:
    doc = render(deny_report())
    [standard] = doc["definitions"]["standards"]
    assert standard["name"] == "provscan admission policy"
    assert standard["owner"] == "provscan"
    identifiers = {r["identifier"] for r in standard["requirements"]}
    assert identifiers == {
        "ADMISSION",
        "SER-PICKLE-DANGEROUS-GLOBAL",
        "LIC-NONCOMMERCIAL",
        "POL-STEP-FAILED",
        "ORG-UNKNOWN",
    }

    decl = doc["declarations"]
    evidence = {e["bom-ref"]: e for e in decl["evidence"]}
    # three findings plus the failed and the skipped step; the completed step is not evidence
    assert len(evidence) == 5
    assert {"evidence:step:signatures", "evidence:step:probes"} <= set(evidence)
    pickle = next(e for e in decl["evidence"] if "SER-PICKLE-DANGEROUS-GLOBAL" in e["description"])
    attached = json.loads(pickle["data"][0]["contents"]["attachment"]["content"])
    assert attached["evidence"] == {"global": "os.system"}

    claims = {c["predicate"]: c for c in decl["claims"]}
    pickle_claim = claims["deny SER-PICKLE-DANGEROUS-GLOBAL: unsafe pickle global os.system"]
    assert pickle_claim["target"] == model_of(doc)["bom-ref"]
    assert pickle_claim["evidence"] == [pickle["bom-ref"]]
    assert claims["deny POL-STEP-FAILED: required step signatures failed"]["evidence"] == [
        "evidence:step:signatures"
    ]
    scores = {m["requirement"]: m["conformance"]["score"] for m in decl["attestations"][0]["map"]}
    assert scores["requirement:SER-PICKLE-DANGEROUS-GLOBAL"] == 0.0
    assert scores["requirement:LIC-NONCOMMERCIAL"] == 0.5
    assert scores["requirement:ORG-UNKNOWN"] == 1.0
    assert "unsafe pickle global" in decl["attestations"][0]["map"][0]["conformance"]["rationale"]
    assert prop(model_of(doc), "provscan:findings:total") == ["3"]
    assert prop(model_of(doc), "provscan:findings:critical") == ["1"]


def test_report_without_verdict_has_evidence_but_no_attestation() -> None:
    doc = render(CASES["inspect-no-verdict"]())
    assert "definitions" not in doc
    assert "attestations" not in doc["declarations"]
    assert len(doc["declarations"]["evidence"]) == 3
    assert prop(model_of(doc), "provscan:verdict") == []
    assert "declarations" not in render(CASES["inspect-nothing"]())


def test_metadata_records_scan_parameters() -> None:
    meta = render(deny_report())["metadata"]
    assert prop(meta, "provscan:report:schema_version") == [SCHEMA_VERSION]
    assert prop(meta, "provscan:target:kind") == ["directory"]
    assert prop(meta, "provscan:hash:algorithm") == ["sha256"]
    assert prop(meta, "provscan:hash:serialization") == ["files"]
    assert prop(meta, "provscan:step:signatures") == ["failed"]


def test_an_invalid_bom_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def bad_card(report: Report) -> dict[str, Any]:
        return {"modelParameters": {"task": "x"}, "bogus": True}

    monkeypatch.setattr("provscan.emit.cyclonedx.model_card", bad_card)
    with pytest.raises(OutputError, match="bogus"):
        render_cyclonedx(make_report())


def test_repeated_bom_refs_are_refused_not_renamed() -> None:
    # The library would rename the second ref to a random value: not deterministic, so refused.
    files = (FILES[0], FILES[0].model_copy(update={"size": 1}))
    with pytest.raises(OutputError, match="bom-ref repeated"):
        render_cyclonedx(make_report(files=files))


def test_validate_reports_schema_and_reference_errors() -> None:
    doc = render(deny_report())
    doc["declarations"]["claims"][0]["target"] = "model:nowhere"
    doc["components"][0]["type"] = "spaceship"
    errors = validate_cyclonedx(json.dumps(doc))
    assert any("spaceship" in e for e in errors)
    assert any("model:nowhere" in e for e in errors)
    [not_json] = validate_cyclonedx("{not json")
    assert not_json.startswith("not JSON")
    doc = render(deny_report())
    doc["declarations"]["claims"][1]["bom-ref"] = "claim:admission"
    assert "bom-ref 'claim:admission' is used 2 times" in validate_cyclonedx(json.dumps(doc))


def _library_errors(doc: dict[str, Any]) -> list[str]:
    found = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc), all_errors=True)
    return [str(e) for e in found or ()]


@pytest.mark.parametrize("case", sorted(CASES))
def test_library_validator_agrees_that_every_case_is_valid(case: str) -> None:
    doc = render(CASES[case](), licence_texts={"LICENSE": LLAMA_TEXT})
    assert _library_errors(doc) == []


def test_fast_validator_agrees_with_library_on_repeated_items() -> None:
    doc = render(make_report())
    files = doc["components"][0]["components"]
    files.append(dict(files[0]))
    assert _library_errors(doc) != []
    errors = validate_cyclonedx(json.dumps(doc))
    assert any("non-unique" in e for e in errors)
    # equal JSON values in another key order or number spelling are still repeats
    files[-1] = {k: files[0][k] for k in reversed(list(files[0]))}
    assert any("non-unique" in e for e in validate_cyclonedx(json.dumps(doc)))


def test_repeat_check_uses_json_schema_equality() -> None:
    assert _canonical({"a": 1, "b": [2.0]}) == _canonical({"b": [2], "a": 1.0})
    assert _canonical(True) != _canonical(1)
    assert _canonical("1") != _canonical(1)


def _provenance(report: Report) -> tuple[OriginFacts, LicenceFacts]:
    """Origin and licence facts the real collectors derive from the report's card alone."""
    origin = collect_origin([], report.target, report.card, report.model, DEFAULT_LIMITS).value
    licence = collect_licence([], report.target, report.card, origin, DEFAULT_LIMITS).value
    return origin, licence


def _kitchen_sink() -> Report:
    """A report that makes the emitter write every property it knows."""
    files = (
        *FILES,
        FileEntry(
            path="alias.bin", size=1, format=FileFormat.BINARY, role=FileRole.OTHER, symlink=True
        ),
        FileEntry(
            path="model.sig", size=5, format=FileFormat.JSON, role=FileRole.OTHER, in_manifest=False
        ),
        # Read by range in a metadata-only hf:// scan: the Hub's hash, not computed.
        FileEntry(
            path="model-00002-of-00002.safetensors",
            size=1 << 30,
            format=FileFormat.SAFETENSORS,
            role=FileRole.WEIGHTS,
            sha256="cd" * 32,
            read="header",
            sha256_source="hub-recorded",
        ),
    )
    report = make_report(
        decision=Decision.DENY,
        reasons=DENY_REASONS,
        findings=DENY_FINDINGS,
        steps=DENY_STEPS,
        card=llama_card(),
        files=files,
    )
    assert report.manifest is not None and report.model is not None and report.card is not None
    card = report.card.model_copy(
        update={"base_models": (*llama_card().base_models, "meta-llama/Llama-3.2-11B-Vision")}
    )
    origin, licence = _provenance(report.model_copy(update={"card": card}))
    return report.model_copy(
        update={
            "card": card,
            # What file evidence would add (a tokenizer family, an identified LICENSE text).
            "origin": origin.model_copy(update={"family": "llama3", "family_confidence": "high"}),
            "licence": licence.model_copy(update={"detected": ("llama3",)}),
            "parameters": report.parameters.model_copy(
                update={"serialization": "shards", "shard_size": 1 << 30}
            ),
            "manifest": report.manifest.model_copy(
                update={"method": "shards", "shard_size": 1 << 30}
            ),
            "model": report.model.model_copy(update={"config_parameter_count": 1000}),
            "signatures": _signatures(),
            "records": _records(),
            "probes": _probes(),
            "target": report.target.model_copy(
                update={
                    "hub": HubFetch(
                        mode="metadata",
                        endpoint="https://huggingface.co",
                        requested_revision="main",
                        files=len(files),
                        bytes=sum(f.size for f in files),
                    )
                }
            ),
        }
    )


def _records() -> tuple[RecordCheck, ...]:
    """The Hub's model_info record (authenticated) and a cache snapshot's blob names (local)."""
    return (
        RecordCheck(
            source="hub-model-info",
            authenticated=True,
            files_compared=2,
            consistent=("README.md", "config.json"),
            not_compared=("model-00002-of-00002.safetensors",),
            commit=REVISION,
        ),
        RecordCheck(
            source="hub-cache-blob",
            authenticated=False,
            files_compared=2,
            consistent=("README.md",),
            mismatched=("config.json",),
            commit=REVISION,
        ),
    )


def test_bom_says_which_hub_records_are_authenticated() -> None:
    bom = model_of(render(_kitchen_sink(), licence_texts={"LICENSE": LLAMA_TEXT}))
    assert prop(bom, "provscan:records:hub-model-info:authenticated") == ["true"]
    assert prop(bom, "provscan:records:hub-model-info:consistent") == ["2"]
    assert prop(bom, "provscan:records:hub-model-info:not_compared") == ["1"]
    assert prop(bom, "provscan:records:hub-cache-blob:authenticated") == ["false"]
    assert prop(bom, "provscan:records:hub-cache-blob:mismatched") == ["1"]


def _probes() -> ProbeFacts:
    """A budgeted probe run with a confirmed known trigger and an unconfirmed target."""
    return ProbeFacts(
        suite_id="default",
        suite_version="1.0",
        engine=ProbeEngine(name="transformers", version="5.23.0", model="m", device="cpu"),
        budget=ProbeBudget(
            forward_passes=100_000, seconds=600, used_forward_passes=99_000, used_seconds=61.2
        ),
        partial=True,
        candidates=(
            ProbeCandidate(
                family="replay",
                status="confirmed",
                trigger="cf",
                trigger_token_ids=(7,),
                target="zap zorp zing",
                source="RIPPLe / BadNets-NLP rare-token triggers",
            ),
            ProbeCandidate(family="inversion", status="candidate", trigger=None, target="zap"),
        ),
    )


def _signatures() -> SignatureFacts:
    """A Sigstore signature whose files differ, with every signer field the emitter writes."""
    signer = Signer(
        method="sigstore",
        key_fingerprint="ab" * 32,
        identity="release@acme.example",
        oidc_issuer="https://accounts.google.com",
        certificate_subject="CN=sigstore",
        tlog=TlogEntry(log_index=42),
        trust_anchor="sigstore:" + "cd" * 32,
        certificate_not_before=datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc),
        certificate_not_after=datetime(2026, 1, 1, 12, 10, tzinfo=timezone.utc),
        validity_checked_at=datetime(2026, 1, 1, 12, 1, tzinfo=timezone.utc),
        validity_basis="transparency-log",
    )
    check = SignatureCheck(
        path="model.sig",
        sha256="ef" * 32,
        status=SignatureStatus.VERIFIED,
        signer=signer,
        integrity="mismatch",
        changed=("model.safetensors",),
        missing=("tokenizer.json",),
        extra=("extra.py",),
        not_covered=(
            UncoveredFile(
                path="notes.txt", role=FileRole.OTHER, reason="ignored", loader_read=True
            ),
        ),
    )
    return SignatureFacts(signatures=(check,))


def _emitted_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, list):
                names |= {p["name"] for p in value}
            elif key == "propertyName":
                names.add(value)
            else:
                names |= _emitted_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= _emitted_names(item)
    return names


def test_sbom_readme_documents_exactly_the_emitted_properties() -> None:
    readme = (Path(__file__).parents[2] / "sbom" / "README.md").read_text(encoding="utf-8")
    taxonomy = readme.split("## Property taxonomy", 1)[1]
    documented = re.findall(r"^\| `(provscan:[^`]+)`", taxonomy, flags=re.MULTILINE)
    # a <placeholder> in the table stands for one segment of the name
    patterns = [
        re.compile("^" + re.sub("<[^>]+>", "[^:]+", re.escape(d)) + "$") for d in documented
    ]
    assert len(documented) > 30
    emitted = _emitted_names(render(_kitchen_sink(), licence_texts={"LICENSE": LLAMA_TEXT}))
    undocumented = {n for n in emitted if not any(p.match(n) for p in patterns)}
    assert undocumented == set()
    unused = {d for d, p in zip(documented, patterns) if not any(p.match(n) for n in emitted)}
    assert unused == set()


def test_scanned_derivative_bom_has_concluded_text_supplier_country_and_ancestors(
    tmp_path: Path,
) -> None:
    model = build_demo_model(tmp_path / "model")
    (model / "README.md").write_text(
        "---\nlicense: apache-2.0\nbase_model: Qwen/Qwen2.5-7B-Instruct\n---\n# tuned\n"
    )
    report = scan(str(model), ScanOptions(hash_workers=1))
    texts = report.licence_texts
    doc = render(report)
    bom = model_of(doc)
    by_ack = {lic["acknowledgement"]: lic for lic in (e["license"] for e in bom["licenses"])}
    assert by_ack["declared"]["id"] == "Apache-2.0"
    concluded = by_ack["concluded"]
    assert concluded["id"] == "Apache-2.0"
    assert concluded["text"]["content"] == texts["LICENSE"]  # the model's own file, in full
    [ancestor] = bom["pedigree"]["ancestors"]
    assert ancestor["purl"] == "pkg:huggingface/Qwen/Qwen2.5-7B-Instruct"
    assert ancestor["supplier"]["address"]["country"] == "CN"
    assert ancestor["manufacturer"]["name"] == ancestor["supplier"]["name"]
    assert [lic["license"]["id"] for lic in ancestor["licenses"]] == ["Apache-2.0"]
    assert prop(ancestor, "provscan:lineage:relation") == ["finetune"]
    assert "CN (Qwen, " in prop(bom, "provscan:origin:jurisdiction:root")[0]
    assert validate_cyclonedx(json.dumps(doc)) == []


def test_bom_records_each_signature_and_what_differs() -> None:
    bom = model_of(render(_kitchen_sink(), licence_texts={"LICENSE": LLAMA_TEXT}))
    assert prop(bom, "provscan:signature:count") == ["1"]
    assert prop(bom, "provscan:signature:model.sig:status") == ["verified"]
    assert prop(bom, "provscan:signature:model.sig:integrity") == ["mismatch"]
    assert prop(bom, "provscan:signature:model.sig:changed") == ["model.safetensors"]
    assert prop(bom, "provscan:signature:model.sig:identity") == ["release@acme.example"]
    assert prop(bom, "provscan:signature:model.sig:tlog_index") == ["42"]


def test_known_release_bom_names_its_publisher_as_supplier_with_country(tmp_path: Path) -> None:
    from fixtures.models import build_hf_cache_snapshot

    model = build_demo_model(tmp_path / "model")
    snapshot = build_hf_cache_snapshot(tmp_path / "hub", "google/gemma-2b-it", REVISION, model)
    report = scan(str(snapshot), ScanOptions(hash_workers=1))
    bom = model_of(render(report))
    assert bom["supplier"]["address"]["country"] == "US"
    assert bom["supplier"]["name"] == "Google LLC"
    types = {ref["type"] for ref in bom["externalReferences"]}
    assert {"distribution", "model-card", "license"} <= types


def _embedded(doc: dict[str, Any]) -> dict[str, Any]:
    [component] = [c for c in doc["components"] if c.get("bom-ref") == "report:provscan"]
    return component


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_bom_carries_its_report_without_local_paths(case: str) -> None:
    report = CASES[case]()
    doc = render(report)
    assert doc["components"][0]["type"] == "machine-learning-model"  # still first
    component = _embedded(doc)
    assert component["type"] == "data"
    [data] = component["data"]
    attachment = data["contents"]["attachment"]
    assert attachment["contentType"] == "application/json" and "encoding" not in attachment
    content = attachment["content"]
    assert component["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256(content.encode()).hexdigest()}
    ]
    embedded = Report.model_validate_json(content)
    assert embedded.target.root == "" and embedded.target.input == report.target.name
    assert report.target.root not in content
    assert embedded.model_copy(update={"target": report.target}) == report


def test_an_hf_reference_is_kept_in_the_embedded_report() -> None:
    report = make_report(repo_id="acme/tiny-llama", revision=REVISION)
    report = report.model_copy(
        update={"target": report.target.model_copy(update={"input": "hf://acme/tiny-llama"})}
    )
    content = _embedded(render(report))["data"][0]["contents"]["attachment"]["content"]
    assert json.loads(content)["target"]["input"] == "hf://acme/tiny-llama"


def test_evaluate_reads_back_the_report_a_bom_embeds(tmp_path: Path) -> None:
    """Every claim the reader compares (schema, digest, files, verdict) agrees as written."""
    from provscan.cli.evaluate_input import load_evidence
    from provscan.emit.bom.report import shareable

    for case, build in sorted(CASES.items()):
        report = build()
        path = tmp_path / f"{case}.cdx.json"
        path.write_text(render_cyclonedx(with_texts(report, {"LICENSE": LLAMA_TEXT})))
        evidence = load_evidence(path)
        assert evidence.report == shareable(report), case
        assert (evidence.schema_version, evidence.older) == (SCHEMA_VERSION, False)
