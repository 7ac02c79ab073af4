"""What does a person at a terminal need to see: the verdict, why, and what was scanned."""

from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape as _markup_escape
from rich.table import Table

from provscan.emit.audit.records import record_problems, record_summary
from provscan.emit.sizes import human_size
from provscan.report import Decision, Report, StepStatus
from provscan.signing.label import files_match_signed, signer_label
from provscan.visible import visible


def escape(text: str) -> str:
    """Scanned text for the console: no rich markup, and no hidden characters (a file name
    holding ESC sequences or bidi overrides would otherwise rewrite the terminal)."""
    return _markup_escape(visible(text))


_SEVERITY_STYLE = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}
_DECISION_STYLE = {
    Decision.APPROVE: "bold green",
    Decision.REVIEW: "bold yellow",
    Decision.DENY: "bold red",
}
_LEVEL_STYLE = {"deny": "red", "review": "yellow", "warn": "cyan"}


def render_terminal(report: Report, *, color: bool = False, width: int = 110) -> str:
    """Render a report (and its verdict, when there is one) as terminal text."""
    buffer = io.StringIO()
    console = Console(
        file=buffer, force_terminal=color, no_color=not color, width=width, highlight=False
    )
    _header(console, report)
    _steps(console, report)
    _findings(console, report)
    _verdict(console, report)
    # rich pads table cells to the width; trailing blanks only make copied text ragged.
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _header(console: Console, report: Report) -> None:
    target = report.target
    total = sum(f.size for f in report.files)
    console.print(
        f"[bold]provscan {report.tool.version}[/bold]  {escape(target.input)}  ({target.kind.value})"
    )
    if target.repo_id:
        console.print(
            f"  repo       {escape(target.repo_id)}@{escape(target.revision or 'unknown revision')}"
        )
    console.print(f"  files      {len(report.files)} ({human_size(total)})")
    hub = target.hub
    if hub is not None and hub.mode == "metadata":
        console.print(
            f"  hub        metadata only: {hub.files_fetched} file(s) downloaded "
            f"({human_size(hub.bytes_fetched)}), {hub.files_ranged} read by range "
            f"({human_size(hub.bytes_ranged)} in {hub.range_requests} requests); "
            "--download to hash and scan them all"
        )
    if report.manifest is not None:
        console.print(
            f"  manifest   sha256:{report.manifest.root_digest} (OMS, {report.manifest.method})"
        )
    _signatures(console, report)
    _records(console, report)
    model = report.model
    if model is not None:
        arch = ", ".join(model.architectures) or "unknown architecture"
        params = (
            f"{model.parameter_count:,} parameters"
            if model.parameter_count is not None
            else "parameters unknown"
        )
        dtypes = ", ".join(model.weight_dtypes) or model.config_dtype or "dtype unknown"
        extra = ""
        if model.quantization:
            extra += f", quantized {', '.join(model.quantization)}"
        if model.context_length is not None:
            extra += f", context {model.context_length:,}"
        console.print(
            f"  model      {escape(arch)} ({escape(model.model_type or '?')}), {params}, "
            f"{escape(dtypes)}{escape(extra)}"
        )
    card = report.card
    if card is not None:
        licences = ", ".join(card.licenses) or "none declared"
        base = ", ".join(card.base_models) or "none declared"
        console.print(f"  card       licence: {escape(licences)}; base model: {escape(base)}")
    _licence(console, report)
    _origin(console, report)
    _unproven_facts(console, report)
    _probes(console, report)


def _probes(console: Console, report: Report) -> None:
    facts = report.probes
    if facts is None:
        return
    engine = f"{facts.engine.name} {facts.engine.version} on {facts.engine.device or '?'}"
    budget = facts.budget
    of = f" of {budget.forward_passes:,} budgeted" if budget.forward_passes is not None else ""
    used = f"{budget.used_forward_passes:,}{of} forward passes in {budget.used_seconds:.1f} s"
    partial = (
        "; [yellow]partial: the budget did not cover the suite[/yellow]" if facts.partial else ""
    )
    console.print(
        f"  probes     suite {escape(facts.suite_id)}@{escape(facts.suite_version)} "
        f"({escape(engine)}), {used}{partial}"
    )
    for candidate in facts.candidates:
        colour = "red" if candidate.status == "confirmed" else "yellow"
        trigger = repr(candidate.trigger) if candidate.trigger is not None else "no trigger found"
        target = f" -> {candidate.target!r}" if candidate.target else ""
        console.print(
            f"             [{colour}]{candidate.status}[/{colour}] {escape(trigger)}"
            f"{escape(target)} ({candidate.family})"
        )


def _signatures(console: Console, report: Report) -> None:
    facts = report.signatures
    if facts is None:
        return
    if not facts.signatures:
        console.print("  signature  [yellow]none[/yellow] (no model.sig, no --signature)")
    for sig in facts.signatures:
        colour = {"verified": "green", "unverified": "yellow"}.get(sig.status.value, "red")
        line = f"  signature  {escape(sig.path)}: [{colour}]{sig.status.value}[/{colour}]"
        if sig.signer is not None:
            line += f" ({escape(signer_label(sig.signer))})"
        # "Signed" only where a trusted anchor verified the manifest the files match.
        if sig.integrity == "match" and not files_match_signed(sig):
            claims = f"; {sig.signed_files} file(s) match what the bundle claims"
            files = claims + (
                ", but its signature does not verify"
                if sig.status.value == "invalid"
                else "; its signer is not verified"
            )
        else:
            files = {
                "match": f"; {sig.signed_files} signed file(s) match",
                "mismatch": f"; files differ: {len(sig.changed)} changed, {len(sig.missing)} missing, {len(sig.extra)} extra",
                "not_checked": "; files not compared",
            }[sig.integrity]
        console.print(line + files)
        if sig.reason and sig.status.value != "verified":
            console.print(f"             {escape(sig.reason)}")
        read = [e.path for e in sig.not_covered if e.loader_read]
        if read:
            shown = ", ".join(read[:10]) + (f" and {len(read) - 10} more" if len(read) > 10 else "")
            console.print(
                f"             [yellow]not covered, yet read by loaders[/yellow]: {escape(shown)}"
            )


def _unproven_facts(console: Console, report: Report) -> None:
    """Facts read from files no verified signature covers, when the model is signed at all
    (an unsigned model's facts are all the sender's word, as its signature line says)."""
    facts = report.signatures
    if facts is None or not any(s.status.value == "verified" for s in facts.signatures):
        return
    unproven: dict[str, set[str]] = {}
    for source in report.fact_sources:
        if not source.signed_by:
            unproven.setdefault(source.path, set()).add(source.fact)
    for path, kinds in sorted(unproven.items()):
        console.print(
            f"  unsigned   [yellow]{escape(', '.join(sorted(kinds)))} read from {escape(path)}, "
            "which no verified signature covers[/yellow]"
        )


def _records(console: Console, report: Report) -> None:
    """Each Hub record the files were compared with, and whether a match with it proves anything."""
    if not report.records:
        return
    for record in report.records:
        colour = "green" if record.authenticated and not record.mismatched else "yellow"
        console.print(f"  records    [{colour}]{escape(record_summary(record))}[/{colour}]")
        for what, files, tone in record_problems(record):
            style = "red" if tone == "bad" else "yellow"
            shown = ", ".join(files[:10]) + (
                f" and {len(files) - 10} more" if len(files) > 10 else ""
            )
            console.print(f"             [{style}]{what}[/{style}]: {escape(shown)}")


def _licence(console: Console, report: Report) -> None:
    facts = report.licence
    if facts is None:
        return
    own = [t for t in facts.terms if t.kind == "licence" and t.via is None]
    if not own:
        console.print("  licence    [yellow]unknown[/yellow] (no licence could be concluded)")
    for t in own:
        sources = sorted(
            {e.path or e.source for e in facts.evidence if e.key == t.key and e.kind == "licence"}
        )
        console.print(
            f"  licence    {escape(t.name)} {escape(f'[{t.key}]')} from {escape(', '.join(sources))}; "
            f"commercial use: {_commercial(report, t.key, t.commercial)}"
        )
    for t in facts.terms:
        if t.kind == "licence" and t.via is not None:
            console.print(
                f"  inherits   {escape(t.name)} {escape(f'[{t.key}]')} via {escape(t.via)}; "
                f"commercial use: {_commercial(report, t.key, t.commercial)}"
            )


def _commercial(report: Report, key: str, commercial: str) -> str:
    """'no' never stands alone: the policy's reason about it (a research configuration that
    does not count it, a review, a deny) is named beside it; with no policy run, it is red."""
    if commercial != "no":
        return commercial
    verdict = report.verdict
    reasons = [
        r
        for r in (verdict.reasons if verdict is not None else ())
        if r.rule == "POL-LICENCE-NONCOMMERCIAL"
        and (r.details.get("licence") == key or key in r.msg)
    ]
    if not reasons:
        return "[red]no[/red]"
    return f"[red]no[/red] ({escape(reasons[0].level)}: {escape(reasons[0].rule)})"


def _origin(console: Console, report: Report) -> None:
    origin = report.origin
    if origin is None:
        return
    family = (
        f"{origin.family} ({origin.family_confidence} confidence)" if origin.family else "unknown"
    )
    places = ", ".join(
        f"{j.country} via {j.role} {j.org} ({j.confidence})" for j in origin.jurisdictions
    )
    console.print(f"  origin     {escape(places or 'unknown')}; family {escape(family)}")
    for edge in origin.lineage:
        console.print(f"  lineage    {escape(edge.relation)} of {escape(edge.base)}")


def _steps(console: Console, report: Report) -> None:
    unusual = [s for s in report.steps if s.status is not StepStatus.COMPLETED]
    for step in unusual:
        style = "red" if step.status is StepStatus.FAILED else "yellow"
        console.print(
            f"  [{style}]step {step.name} {step.status.value}[/{style}]: {escape(step.reason or '')}"
        )


def _findings(console: Console, report: Report) -> None:
    shown = [f for f in report.findings if f.severity.value != "info"]
    if not shown:
        console.print("  findings   none")
        return
    levels = _policy_levels(report)
    table = Table(
        title=f"{len(shown)} finding(s)", title_justify="left", show_lines=False, expand=False
    )
    table.add_column("severity")
    if levels:
        table.add_column("policy")
    table.add_column("rule")
    table.add_column("message", overflow="fold")
    for finding in shown:
        style = _SEVERITY_STYLE[finding.severity.value]
        cells = [f"[{style}]{finding.severity.value}[/{style}]"]
        if levels:
            level = levels.get((finding.rule_id, finding.message))
            cells.append(f"[{_LEVEL_STYLE[level]}]{level}[/{_LEVEL_STYLE[level]}]" if level else "")
        cells += [finding.rule_id, escape(finding.message)]
        table.add_row(*cells)
    console.print(table)


def _policy_levels(report: Report) -> dict[tuple[str, str], str]:
    """The verdict's level for each finding a reason repeats word for word (rule and message):
    the findings table shows it, and the verdict does not print the finding a second time."""
    verdict = report.verdict
    if verdict is None:
        return {}
    findings = {(f.rule_id, f.message) for f in report.findings}
    return {(r.rule, r.msg): r.level for r in verdict.reasons if (r.rule, r.msg) in findings}


def _verdict(console: Console, report: Report) -> None:
    verdict = report.verdict
    if verdict is None:
        return
    style = _DECISION_STYLE[verdict.decision]
    console.print(
        f"\n[{style}]VERDICT: {verdict.decision.value.upper()}[/{style}]  (policy {', '.join(verdict.policy.packs)}, sha256:{verdict.policy.digest[:12]})"
    )
    repeated = _policy_levels(report)
    # A grid, so that a long reason wraps under its own text, not under the level.
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=1)
    grid.add_column(width=6)
    grid.add_column(overflow="fold")
    rows: list[tuple[str, str]] = []  # (level, text); a repeated finding's row is its level's
    repeated_rules: dict[str, list[str]] = {}
    for reason in verdict.reasons:
        if (reason.rule, reason.msg) in repeated:
            if reason.level not in repeated_rules:
                repeated_rules[reason.level] = []
                rows.append((reason.level, ""))
            repeated_rules[reason.level].append(reason.rule)
            continue
        rows.append((reason.level, f"{escape(reason.rule)}: {escape(reason.msg)}"))
    for level, text in rows:
        if not text:
            rules = repeated_rules[level]
            counted = ", ".join(
                f"{rule} x{rules.count(rule)}" if rules.count(rule) > 1 else rule
                for rule in dict.fromkeys(rules)
            )
            text = f"{len(rules)} finding(s) in the table above: {escape(counted)}"
        level_style = _LEVEL_STYLE[level]
        grid.add_row("", f"[{level_style}]{level}[/{level_style}]", text)
    console.print(grid)
