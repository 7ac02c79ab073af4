"""What does an auditor read in a browser? The audit report as one self-contained HTML page.

One file: inline CSS, no JavaScript, and a Content-Security-Policy that lets nothing load
from anywhere, so a hostile string that slipped through could still not fetch or run anything.
All scanned text is escaped by `emit.audit.markup.tag`.
"""

from __future__ import annotations

from importlib.resources import files

from provscan.emit.audit.build import build_audit
from provscan.emit.audit.markup import Markup, escape, join, tag, void
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
from provscan.emit.audit.svg import lineage_svg
from provscan.report import Report

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_SYMBOL: dict[Tone, str] = {"good": "✓", "warn": "!", "bad": "✕"}


def render_html(report: Report) -> str:
    """The audit report as a self-contained HTML5 page (deterministic: golden-file tested)."""
    doc = build_audit(report)
    head = tag(
        "head",
        join([
            void("meta", charset="utf-8"),
            void("meta", http_equiv="Content-Security-Policy", content=CSP),
            void("meta", name="referrer", content="no-referrer"),
            void("meta", name="viewport", content="width=device-width, initial-scale=1"),
            tag("title", doc.title),
            tag("style", Markup(_css())),
        ]),
    )  # fmt: skip
    header = tag("header", tag("h1", doc.title), _facts(doc.meta, "meta"))
    contents = tag(
        "nav",
        tag("ul", join([tag("li", tag("a", s.title, href=f"#{s.key}")) for s in doc.sections], "")),
        aria_label="Contents",
    )
    footer = tag(
        "footer",
        tag(
            "p",
            f"Rendered by {report.tool.name} {report.tool.version} from a report of schema "
            f"{report.schema_version}. Self-contained: no scripts, nothing loaded from elsewhere. "
            "The JSON report is the complete record.",
        ),
    )
    sections = [_section(s) for s in doc.sections]
    main = tag("main", join([header, _verdict(doc.verdict), contents, *sections, footer]))
    body = tag("body", main)
    return f"<!DOCTYPE html>\n{tag('html', join([head, body]), lang='en')}\n"


def _css() -> str:
    return files("provscan.emit").joinpath("templates/audit.css").read_text(encoding="utf-8")


def _tone(tone: Tone | None, base: str | None = None) -> str | None:
    classes = [c for c in (base, f"tone-{tone}" if tone else None) if c]
    return " ".join(classes) or None


def _verdict(verdict: VerdictView) -> Markup:
    text = f"{_SYMBOL[verdict.tone]} {verdict.label}" if verdict.tone else verdict.label
    badge = tag("span", text, cls="badge")
    parts = [
        tag("h2", "Verdict"),
        tag("p", badge, cls="decision"),
        tag("p", verdict.summary, cls="summary"),
        *(_block(b, 3) for b in verdict.blocks),
    ]
    return tag(
        "section",
        join(parts),
        id="verdict",
        cls=_tone(verdict.tone, "verdict"),
        data_decision=verdict.decision or "none",
    )


def _section(section: Section) -> Markup:
    parts = [tag("h2", section.title), *(_block(b, 3) for b in section.blocks)]
    return tag("section", join(parts), id=section.key)


def _block(block: Block, level: int) -> Markup:
    if isinstance(block, Sub):
        title = block.title if block.tone is None else f"{_SYMBOL[block.tone]} {block.title}"
        heading = tag(f"h{min(level, 6)}", title)
        inner = [heading, *(_block(b, level + 1) for b in block.blocks)]
        return tag("div", join(inner), cls=_tone(block.tone, "sub"))
    if isinstance(block, Facts):
        return _facts(block)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Para):
        return tag("p", block.text, cls=_tone(block.tone, "note" if block.tone else None))
    if isinstance(block, Quote):
        cite = tag("footer", "— ", tag("cite", block.cite))
        return tag("blockquote", tag("p", block.text), cite)
    if isinstance(block, Verbatim):  # a parser drops one newline after <pre>: keep the text's own
        return tag(
            "figure", tag("figcaption", block.label), tag("pre", "\n" + block.text), cls="verbatim"
        )
    return _lineage(block)


def _cell(cell: Cell) -> Markup:
    if not cell.mono:
        return escape(cell.text)
    # Short ids (rule ids, file names) stay whole; long ones (hashes) may wrap anywhere.
    return tag("code", cell.text, cls="short" if len(cell.text) <= 40 else None)


def _facts(facts: Facts, cls: str = "facts") -> Markup:
    items = [
        tag("div", tag("dt", label), tag("dd", _cell(value), cls=_tone(value.tone)))
        for label, value in facts.rows
    ]
    return tag("dl", join(items), cls=cls)


def _table(table: Table) -> Markup:
    head = tag("thead", tag("tr", join([tag("th", h, scope="col") for h in table.headers], "")))
    rows = [
        tag("tr", join([tag("td", _cell(c), cls=_tone(c.tone)) for c in row], ""))
        for row in table.rows
    ]
    return tag("div", tag("table", head, tag("tbody", join(rows))), cls="table-wrap")


def _lineage(lineage: Lineage) -> Markup:
    label = {n.key: n.label for n in lineage.nodes}
    items = [
        tag(
            "li",
            tag("span", label[e.child], cls="model"),
            f" → {e.relation} of → ",
            tag("span", label[e.base], cls="model"),
            tag("span", f" (source: {e.sources or 'not recorded'})", cls="source"),
        )
        for e in lineage.edges
    ]
    legend = (
        "The scanned model (bold) at the top; each row one hop further; lineage roots in amber."
    )
    diagram = tag("figure", lineage_svg(lineage), tag("figcaption", legend), cls="lineage")
    return join([diagram, tag("ul", join(items), cls="lineage-list")])
