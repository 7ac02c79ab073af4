"""What does an auditor read on GitHub? The audit report as Markdown, scanned text escaped.

Every string from the model (file names, card fields, licence text, probe outputs) goes
through `_text` (inline) or a fence longer than any backtick run in it (verbatim), so it
cannot open a link, a table cell, raw HTML or math when GitHub renders the page.
"""

from __future__ import annotations

import re

from provscan.emit.audit.build import build_audit
from provscan.emit.audit.model import (
    Block,
    Cell,
    Facts,
    Lineage,
    Para,
    Quote,
    Section,
    Sub,
    Table,
    Tone,
    Verbatim,
    VerdictView,
)
from provscan.report import Report

_MARK: dict[Tone, str] = {"good": "✅", "warn": "⚠️", "bad": "⛔"}
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Characters that start emphasis, code, links, tables, strikethrough, math or headings.
_SPECIAL = re.compile(r"[\\`*_\[\]|~$#&<>]")
# Text a line may not start with unescaped: a heading, quote, list item or thematic break.
_LINE_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])")
# Shown as a code span only when nothing in it could matter (GFM splits cells on '|' even in
# code spans, and entities are not decoded there); anything else is escaped text instead.
_PLAIN_CODE = re.compile(r"[\w./:+=@,›()-]+(?: [\w./:+=@,›()-]+)*")
# Mermaid labels: letters, digits and a few separators; anything else could end the
# label, start an entity (#...;) or a markdown string, so it becomes '?'.
_MERMAID_UNSAFE = re.compile(r"[^\w ./:@+-]")


def render_markdown(report: Report) -> str:
    """The audit report as GitHub-flavoured Markdown (deterministic: golden-file tested)."""
    doc = build_audit(report)
    parts = [f"# {_text(doc.title)}", _facts(doc.meta), *_verdict(doc.verdict)]
    for section in doc.sections:
        parts += _section(section)
    parts.append(
        f"---\n\n*Rendered by {_text(report.tool.name)} {_text(report.tool.version)} from a "
        f"report of schema {_text(report.schema_version)}. Text quoted from the model is escaped; "
        "the JSON report is the complete record.*"
    )
    return "\n\n".join(parts) + "\n"


def _text(text: str) -> str:
    """Inline text, escaped: no markup in it takes effect, and it stays on one line."""
    escaped = _SPECIAL.sub(lambda m: _ENTITIES.get(m.group(), "\\" + m.group()), text)
    return escaped.replace("\n", " ")


def _start(text: str) -> str:
    """Escaped text that begins a line: a leading '-', '>' or '1.' must not make a block."""
    return _LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", _text(text), count=1)


def _cell(cell: Cell) -> str:
    code = cell.mono and _PLAIN_CODE.fullmatch(cell.text)
    text = f"`{cell.text}`" if code else _text(cell.text)
    return f"**{text}**" if cell.tone == "bad" and text else text


def _mark(tone: Tone | None) -> str:
    return f"{_MARK[tone]} " if tone else ""


def _verdict(verdict: VerdictView) -> list[str]:
    parts = [f"## Verdict: {_mark(verdict.tone)}{verdict.label}", _start(verdict.summary)]
    for block in verdict.blocks:
        parts += _block(block, 3)
    return parts


def _section(section: Section) -> list[str]:
    parts = [f"## {_text(section.title)}"]
    for block in section.blocks:
        parts += _block(block, 3)
    return parts


def _block(block: Block, level: int) -> list[str]:
    if isinstance(block, Sub):
        parts = [f"{'#' * min(level, 6)} {_mark(block.tone)}{_text(block.title)}"]
        for inner in block.blocks:
            parts += _block(inner, level + 1)
        return parts
    if isinstance(block, Facts):
        return [_facts(block)]
    if isinstance(block, Table):
        return [_table(block)]
    if isinstance(block, Para):
        return [f"{_mark(block.tone)}{_start(block.text)}"]
    if isinstance(block, Quote):
        return [_quote(block)]
    if isinstance(block, Verbatim):
        return [_verbatim(block)]
    return _lineage(block)


def _facts(facts: Facts) -> str:
    return "\n".join(f"- **{_text(label)}:** {_cell(value)}" for label, value in facts.rows)


def _table(table: Table) -> str:
    head = "| " + " | ".join(_text(h) for h in table.headers) + " |"
    rule = "|" + "|".join(" --- " for _ in table.headers) + "|"
    rows = ["| " + " | ".join(_cell(c) or " " for c in row) + " |" for row in table.rows]
    return "\n".join([head, rule, *rows])


def _quote(quote: Quote) -> str:
    lines = [f"> {_start(text)}" if text.strip() else ">" for text in quote.text.split("\n")]
    return "\n".join([*lines, ">", f"> — {_text(quote.cite)}"])


def _verbatim(verbatim: Verbatim) -> str:
    # A fence longer than the longest backtick run inside cannot be closed by the content.
    longest = max((len(run) for run in re.findall(r"`+", verbatim.text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"**{_text(verbatim.label)}**\n\n{fence}text\n{verbatim.text}\n{fence}"


def _lineage(lineage: Lineage) -> list[str]:
    label = {n.key: n.label for n in lineage.nodes}
    chart = ["```mermaid", "flowchart TD"]
    chart += [f'  {n.key}["{_mermaid(n.label)}"]' for n in lineage.nodes]
    chart += [f'  {e.child} -->|"{_mermaid(e.relation)} of"| {e.base}' for e in lineage.edges]
    chart += [f"  style {n.key} stroke-width:3px" for n in lineage.nodes if n.kind == "target"]
    chart.append("```")
    listing = [
        f"- {_text(label[e.child])} → {_text(e.relation)} of → {_text(label[e.base])}"
        f" (source: {_text(e.sources) or 'not recorded'})"
        for e in lineage.edges
    ]
    return ["\n".join(chart), "\n".join(listing)]


def _mermaid(text: str) -> str:
    return _MERMAID_UNSAFE.sub("?", text)[:80]
