"""What did the behavioural probes run, within what budget, and which triggers did they find?"""

from __future__ import annotations

from provscan.emit.audit.model import Block, Cell, Facts, Para, Section, Sub, Table, Tone, Verbatim
from provscan.emit.audit.text import MAX_CANDIDATES, MAX_CASES, block, capped, left_out, line
from provscan.report import ProbeBudget, ProbeCandidate, ProbeFacts, Report

_TITLE = "Probe results"


def probes_section(report: Report) -> Section:
    facts = report.probes
    if facts is None:
        note = Para("No behavioural probes were run (they run only when asked: --probes).")
        return Section("probes", _TITLE, (note,))
    blocks: list[Block] = [_run(facts)]
    if facts.families:
        rows = tuple(
            (
                Cell(f.family),
                Cell(f.status, tone=None if f.status == "completed" else "warn"),
                Cell(line(f.reason, 400) or "–"),
                Cell(f"{f.forward_passes:,}"),
                Cell(f"{f.seconds:.1f} s"),
                Cell(f"{f.candidates_tested:,}"),
            )
            for f in facts.families
        )
        headers = ("Family", "Status", "Reason", "Forward passes", "Time", "Candidates tested")
        blocks.append(Table(headers, rows))
    if not facts.candidates:
        blocks.append(
            Para("No trigger candidates: no probe family raised a suspected trigger.", "good")
        )
    candidates, more = capped(facts.candidates, MAX_CANDIDATES)
    blocks += [_candidate(c) for c in candidates]
    return Section("probes", _TITLE, (*blocks, *left_out(more, "candidates")))


def _run(facts: ProbeFacts) -> Facts:
    engine = facts.engine
    where = ", ".join(line(x, 60) for x in (engine.device, engine.dtype) if x)
    name = f"{engine.name} {line(engine.version, 40)}" + (f" ({where})" if where else "")
    rows: list[tuple[str, Cell]] = [
        ("Suite", Cell(f"{line(facts.suite_id, 120)}@{line(facts.suite_version, 40)}", mono=True)),
        ("Engine", Cell(name)),
        ("Model loaded", Cell(line(engine.model), mono=True)),
        ("Budget", Cell(_budget(facts.budget))),
    ]
    if facts.partial:
        rows.append(
            ("Partial", Cell("yes: the budget ran out before every family finished", tone="warn"))
        )
    if facts.baseline:
        scores = ", ".join(f"{line(k, 60)} {v:.3g}" for k, v in sorted(facts.baseline.items()))
        rows.append(("Baseline scores", Cell(scores)))
    return Facts(tuple(rows))


def _budget(budget: ProbeBudget) -> str:
    passes = f"{budget.used_forward_passes:,}"
    if budget.forward_passes is not None:
        passes += f" of {budget.forward_passes:,}"
    seconds = f"{budget.used_seconds:.1f} s"
    if budget.seconds is not None:
        seconds += f" of {budget.seconds:.1f} s"
    return f"{passes} forward passes, {seconds}"


def _candidate(candidate: ProbeCandidate) -> Sub:
    trigger = _quoted(candidate.trigger) if candidate.trigger is not None else "no trigger found"
    tone: Tone = "bad" if candidate.status == "confirmed" else "warn"
    rows: list[tuple[str, Cell]] = [
        ("Status", Cell(candidate.status, tone=tone)),
        ("Family", Cell(candidate.family)),
        ("Trigger", Cell(trigger, mono=candidate.trigger is not None)),
    ]
    if candidate.trigger_token_ids:
        ids = ", ".join(str(i) for i in candidate.trigger_token_ids[:64])
        rows.append(("Trigger token ids", Cell(ids, mono=True)))
    if candidate.target is not None:
        rows.append(("Forced output", Cell(_quoted(candidate.target), mono=True)))
    if candidate.source:
        rows.append(("Published in", Cell(line(candidate.source))))
    if candidate.scores:
        rows.append(("Scores", Cell(_scores(candidate))))
    blocks: list[Block] = [Facts(tuple(rows))]
    cases, more = capped(candidate.cases, MAX_CASES)
    for number, case in enumerate(cases, 1):
        shown = (
            Verbatim("Prompt with the trigger", block(case.prompt)),
            Verbatim("Output", block(case.output)),
            Verbatim("Same prompt without the trigger", block(case.clean_prompt)),
            Verbatim("Output", block(case.clean_output)),
        )
        blocks.append(Sub(f"Case {number}", shown))
    blocks += left_out(more, "cases")
    title = f"{candidate.status.capitalize()} {candidate.family} candidate: {trigger}"
    return Sub(title, tuple(blocks), tone)


def _quoted(text: str) -> str:
    """A trigger or target as a quoted line, so leading and trailing spaces show."""
    return f"“{line(text, 200)}”"


def _scores(candidate: ProbeCandidate) -> str:
    parts = []
    for key, value in sorted(candidate.scores.items())[:20]:
        limit = candidate.thresholds.get(key)
        bound = f" (threshold {limit:.3g})" if limit is not None else ""
        parts.append(f"{line(key, 60)} {value:.3g}{bound}")
    return ", ".join(parts)
