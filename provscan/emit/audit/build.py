"""What goes in the audit report, and in which order? The view both audit renderers format.

Sections: title, verdict and reasons, licence, origin and lineage, files, Hub records (when
any were compared), signatures, findings, probes, steps, policy record. Renderers only format these blocks.
"""

from __future__ import annotations

from provscan.emit.audit.evidence import files_section, findings_section, signatures_section
from provscan.emit.audit.licence import licence_section, origin_section
from provscan.emit.audit.model import (
    AuditDoc,
    Block,
    Cell,
    Facts,
    Para,
    Section,
    Sub,
    Table,
    Tone,
    VerdictView,
)
from provscan.emit.audit.probes import probes_section
from provscan.emit.audit.records import records_sections
from provscan.emit.audit.text import MAX_REASONS, capped, left_out, line
from provscan.emit.sizes import human_size
from provscan.report import Decision, Reason, Report, StepStatus

_DECISION: dict[Decision, tuple[Tone, str]] = {
    Decision.APPROVE: ("good", "The policy approves this model for use."),
    Decision.REVIEW: ("warn", "A person must review this model before it is used."),
    Decision.DENY: ("bad", "The policy refuses this model: do not use it."),
}
_LEVELS: tuple[tuple[str, str, Tone], ...] = (
    ("deny", "Deny", "bad"),
    ("review", "Review", "warn"),
    ("warn", "Warn", "warn"),
)


def build_audit(report: Report) -> AuditDoc:
    """The audit report's content, in reading order, from one Report."""
    return AuditDoc(
        title=f"provscan audit: {line(report.target.name, 120)}",
        meta=_meta(report),
        verdict=_verdict(report),
        sections=(
            licence_section(report),
            origin_section(report),
            files_section(report),
            *records_sections(report),
            signatures_section(report),
            findings_section(report),
            probes_section(report),
            _steps_section(report),
            _policy_section(report),
        ),
    )


def _meta(report: Report) -> Facts:
    target = report.target
    rows: list[tuple[str, Cell]] = [
        ("Model", Cell(line(target.name))),
        ("Target", Cell(f"{line(target.input)} ({target.kind.value})")),
    ]
    if target.repo_id:
        rows.append(("Repository", Cell(line(target.repo_id))))
    rows.append(("Revision", Cell(line(target.revision) or "unknown", mono=bool(target.revision))))
    hub = target.hub
    if hub is not None:
        rows.append(("Hub fetch", Cell(_hub(report))))
    rows += [
        ("Scanned at", Cell(report.scanned_at.isoformat().replace("+00:00", "Z"))),
        ("Tool", Cell(f"{line(report.tool.name)} {line(report.tool.version)}")),
        ("Report schema", Cell(line(report.schema_version))),
        ("Files", Cell(f"{len(report.files):,} ({human_size(sum(f.size for f in report.files))})")),
    ]
    if report.manifest is not None:
        digest = f"sha256:{report.manifest.root_digest}"
        rows.append(("Manifest root", Cell(line(digest), mono=True)))
    if report.model is not None:
        rows.append(("Architecture", Cell(_model(report))))
    return Facts(tuple(rows))


def _hub(report: Report) -> str:
    hub = report.target.hub
    assert hub is not None
    if hub.mode != "metadata":
        return (
            f"{hub.mode} from {line(hub.endpoint)}: {hub.files:,} files ({human_size(hub.bytes)})"
        )
    return (
        f"metadata only from {line(hub.endpoint)}: {hub.files_fetched:,} of {hub.files:,} files "
        f"downloaded, {hub.files_ranged:,} read by range; the rest were not hashed here"
    )


def _model(report: Report) -> str:
    model = report.model
    assert model is not None
    arch = ", ".join(line(a, 100) for a in model.architectures) or "unknown architecture"
    params = (
        f"{model.parameter_count:,} parameters"
        if model.parameter_count is not None
        else "parameters unknown"
    )
    dtypes = ", ".join(line(d, 40) for d in model.weight_dtypes) or line(model.config_dtype, 40)
    return f"{arch} ({line(model.model_type, 60) or '?'}), {params}, {dtypes or 'dtype unknown'}"


def _verdict(report: Report) -> VerdictView:
    verdict = report.verdict
    if verdict is None:
        return VerdictView(
            decision=None,
            label="NO POLICY EVALUATED",
            tone=None,
            summary="No policy evaluated: this report records facts only (provscan inspect), "
            "so it carries no decision. Run provscan check for a verdict.",
            blocks=(),
        )
    tone, summary = _DECISION[verdict.decision]
    counts = ", ".join(
        f"{sum(r.level == level for r in verdict.reasons)} {level}" for level, _, _ in _LEVELS
    )
    packs = ", ".join(line(p, 80) for p in verdict.policy.packs)
    return VerdictView(
        decision=verdict.decision.value,
        label=verdict.decision.value.upper(),
        tone=tone,
        summary=f"{summary} Reasons: {counts}. Policy: {packs}.",
        blocks=_reasons(verdict.reasons),
    )


def _reasons(reasons: tuple[Reason, ...]) -> tuple[Block, ...]:
    if not reasons:
        return (Para("No rule fired.", "good"),)
    # Deny before review before warn, so the worst reason is read first whatever the order.
    ordered = [r for level, _, _ in _LEVELS for r in reasons if r.level == level]
    shown, more = capped(ordered, MAX_REASONS)
    blocks: list[Block] = []
    for level, title, tone in _LEVELS:
        rows = tuple(
            (Cell(line(r.rule, 80), mono=True), Cell(line(r.msg, 1000)))
            for r in shown
            if r.level == level
        )
        if rows:
            table = Table(("Rule", "Reason"), rows)
            blocks.append(Sub(f"{title} ({len(rows)})", (table,), tone))
    return (*blocks, *left_out(more, "reasons"))


def _steps_section(report: Report) -> Section:
    unusual = [s for s in report.steps if s.status is not StepStatus.COMPLETED]
    done = len(report.steps) - len(unusual)
    blocks: list[Block] = [Para(f"{done} of {len(report.steps)} steps completed.")]
    if unusual:
        rows = tuple(
            (
                Cell(line(s.name, 80), mono=True),
                Cell(s.status.value, tone="bad" if s.status is StepStatus.FAILED else "warn"),
                Cell(line(s.reason, 1000) or "no reason recorded"),
            )
            for s in unusual
        )
        blocks.append(Table(("Step", "Status", "Reason"), rows))
    return Section("steps", "Steps", tuple(blocks))


def _policy_section(report: Report) -> Section:
    scan = (
        ("Hash algorithm", Cell(report.parameters.hash_algorithm)),
        ("Serialization", Cell(_serialization(report))),
    )
    verdict = report.verdict
    if verdict is None:
        note = Para("No policy evaluated: an inspect report carries no verdict.", "warn")
        return Section("policy", "Policy record", (note, Facts(scan)))
    policy = verdict.policy
    record = (
        ("Packs", Cell(", ".join(line(p, 80) for p in policy.packs) or "none")),
        ("Digest", Cell(f"sha256:{line(policy.digest, 80)}", mono=True)),
        ("Engine", Cell(f"{line(policy.engine, 40)} {line(policy.engine_version, 40)}")),
    )
    return Section("policy", "Policy record", (Facts(record + scan),))


def _serialization(report: Report) -> str:
    params = report.parameters
    if params.serialization == "shards" and params.shard_size:
        return f"shards of {params.shard_size:,} bytes"
    return params.serialization
