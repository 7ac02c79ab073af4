"""Which licences govern the model, in their own words, and where do its weights come from?"""

from __future__ import annotations

from provscan.emit.audit.model import (
    Block,
    Cell,
    Edge,
    Facts,
    Lineage,
    Node,
    NodeKind,
    Para,
    Quote,
    Section,
    Sub,
    Table,
    Tone,
)
from provscan.emit.audit.text import (
    MAX_EVIDENCE,
    MAX_NODES,
    MAX_TERMS,
    block,
    capped,
    left_out,
    line,
    yes_no,
)
from provscan.report import LicenceTerms, OriginFacts, Publisher, Report

_COMMERCIAL: dict[str, Tone] = {
    "yes": "good",
    "no": "bad",
    "conditional": "warn",
    "unknown": "warn",
}
_METRIC = {
    "monthly_active_users": "monthly active users",
    "annual_revenue_usd": "annual revenue (USD)",
    "monthly_revenue_usd": "monthly revenue (USD)",
}
_EFFECT = {
    "separate_licence": "a separate licence from the licensor is needed",
    "terminates": "the licence terminates",
    "display": "a duty to display the model's name starts",
}


def licence_section(report: Report) -> Section:
    facts = report.licence
    if facts is None:
        return Section("licence", "Licence", (Para("The licence step did not run.", "warn"),))
    concluded = ", ".join(line(k, 80) for k in facts.concluded)
    unknown = Cell("none: no licence could be concluded", tone="warn")
    summary = Facts(
        (
            ("Concluded", Cell(concluded) if concluded else unknown),
            ("Inherited", Cell(", ".join(line(k, 80) for k in facts.inherited) or "none")),
            ("Declared", Cell(", ".join(line(k, 80) for k in facts.declared) or "none")),
            ("Detected in files", Cell(", ".join(line(k, 80) for k in facts.detected) or "none")),
        )
    )
    terms, more = capped(facts.terms, MAX_TERMS)
    blocks: list[Block] = [summary, *(_terms(t) for t in terms), *left_out(more, "licences")]
    evidence, more = capped(facts.evidence, MAX_EVIDENCE)
    if evidence:
        rows = tuple(
            (
                Cell(line(e.source, 80)),
                Cell(line(e.path) or "–", mono=bool(e.path)),
                Cell(line(e.value, 200)),
                Cell(line(e.key, 80) or "not identified", tone=None if e.key else "warn"),
                Cell("–" if e.score is None else f"{e.score:.2f}"),
            )
            for e in evidence
        )
        table = Table(("Source", "File", "Says", "Identified as", "Text match"), rows)
        blocks.append(Sub("Where the licence was read", (table, *left_out(more, "sources"))))
    return Section("licence", "Licence", tuple(blocks))


def _terms(terms: LicenceTerms) -> Sub:
    kind = {"licence": "licence", "aup": "acceptable use policy", "notice": "notice"}[terms.kind]
    reach = (
        f"{kind} inherited via {line(terms.via, 200)}" if terms.via else f"the model's own {kind}"
    )
    title = f"{line(terms.name, 200)} [{line(terms.key, 80)}]: {reach}"
    spdx = Cell(line(terms.spdx, 80), mono=True) if terms.spdx else Cell("none")
    rows: list[tuple[str, Cell]] = [("SPDX", spdx)]
    if terms.kind == "licence":
        rows.append(("Commercial use", Cell(terms.commercial, tone=_COMMERCIAL[terms.commercial])))
    optional = (
        ("Note", terms.commercial_note),
        ("Copyleft", terms.copyleft),
        ("Must display", terms.attribution_display),
        ("Must ship notice", terms.attribution_notice),
        ("Derivative names begin with", terms.naming_prefix),
        ("Output restriction", terms.output_restriction),
        ("Acceptable use policy", terms.aup_url),
        ("Governing law", terms.governing_law),
        ("Venue", terms.venue),
    )
    rows += [(label, Cell(line(value, 1000))) for label, value in optional if value]
    flags = (
        ("Flow-down of use restrictions", terms.flow_down),
        ("Licensor may restrict use remotely", terms.remote_restriction),
    )
    for label, flag in flags:
        if flag is not None:
            rows.append((label, Cell(yes_no(flag), tone="warn" if flag else None)))
    rows.append(("Terms read from", Cell(line(terms.source), mono=True)))
    blocks: list[Block] = [Facts(tuple(rows))]
    for threshold in terms.thresholds:
        metric = _METRIC.get(threshold.metric, threshold.metric)
        effect = _EFFECT.get(threshold.effect, threshold.effect)
        blocks.append(Para(f"Above {threshold.value:,} {metric}: {effect}.", "warn"))
        blocks.append(Quote(block(threshold.clause).strip(), line(terms.source)))
    for rule in terms.territorial:
        applies = {True: "yes", False: "no", None: "provscan cannot tell"}[rule.applies]
        where = ", ".join(line(t, 10) for t in rule.territories)
        text = f"No rights in {where} (scope: {rule.scope}; applies to this model: {applies})."
        blocks.append(Para(text, "bad" if rule.applies else "warn"))
        blocks.append(Quote(block(rule.clause).strip(), line(terms.source)))
    return Sub(
        title, tuple(blocks), _COMMERCIAL[terms.commercial] if terms.kind == "licence" else None
    )


def origin_section(report: Report) -> Section:
    origin = report.origin
    if origin is None:
        return Section(
            "origin", "Origin and lineage", (Para("The origin step did not run.", "warn"),)
        )
    family = (
        f"{line(origin.family, 80)} ({origin.family_confidence} confidence)"
        if origin.family
        else "unknown"
    )
    summary = Facts(
        (
            ("Publisher", _publisher(origin.publisher)),
            ("Family", Cell(family)),
            ("Multimodal", Cell(yes_no(origin.multimodal))),
            ("Lineage roots", Cell(", ".join(line(m, 200) for m in origin.root_models) or "none")),
        )
    )
    blocks: list[Block] = [summary, _jurisdictions(origin)]
    if origin.lineage:
        blocks.append(Sub("Lineage", _lineage(report.target.name, origin)))
    else:
        blocks.append(Para("No base model is declared: the model has no known lineage."))
    signals, more = capped(origin.family_signals, MAX_EVIDENCE)
    if signals:
        rows = tuple(
            (Cell(line(s.family, 80)), Cell(s.signal), Cell(s.strength),
             Cell(line(s.path) or "–", mono=bool(s.path)), Cell(line(s.detail)))
            for s in signals
        )  # fmt: skip
        table = Table(("Family", "Signal", "Strength", "File", "Detail"), rows)
        blocks.append(Sub("Family signals", (table, *left_out(more, "signals"))))
    return Section("origin", "Origin and lineage", tuple(blocks))


def _publisher(publisher: Publisher | None) -> Cell:
    if publisher is None:
        return Cell("unknown", tone="warn")
    who = line(publisher.org, 120)
    if publisher.legal_entity:
        who += f" ({line(publisher.legal_entity, 200)})"
    parts = [who, f"country {line(publisher.country, 10) or 'unknown'}"]
    if publisher.evidence_url:
        parts.append(f"source: {line(publisher.evidence_url)}")
    return Cell(", ".join(parts))


def _jurisdictions(origin: OriginFacts) -> Block:
    places, more = capped(origin.jurisdictions, MAX_EVIDENCE)
    if not places:
        return Para("No country is known for these weights.", "warn")
    rows = tuple(
        (
            Cell(line(j.country, 10)),
            Cell(line(j.org, 120)),
            Cell(j.role),
            Cell(j.confidence),
            Cell(line(j.evidence, 1000)),
        )
        for j in places
    )
    table = Table(("Country", "Organisation", "Role", "Confidence", "Evidence"), rows)
    return Sub("Jurisdictions", (table, *left_out(more, "jurisdictions")))


def _lineage(target: str, origin: OriginFacts) -> tuple[Block, ...]:
    """The base-model graph, laid out by hops from the scanned model (cycles tolerated)."""
    position: dict[str, int] = {}
    for edge in origin.lineage:
        for name in (edge.child, edge.base):
            position.setdefault(name, len(position))
    order = list(position)
    bases = {e.base for e in origin.lineage}
    starts = [n for n in order if n not in bases] or [order[0]]
    depth = {n: 0 for n in starts}
    frontier = set(starts)
    while frontier:  # breadth first: each name gets its fewest hops, each is visited once
        nxt: set[str] = set()
        for edge in origin.lineage:
            if edge.child in frontier and edge.base not in depth:
                depth[edge.base] = depth[edge.child] + 1
                nxt.add(edge.base)
        frontier = nxt
    deepest = max(depth.values())
    ranked = sorted(order, key=lambda n: (depth.get(n, deepest + 1), position[n]))
    shown, more = capped(ranked, MAX_NODES)
    keys = {name: f"n{i}" for i, name in enumerate(shown)}
    roots = set(origin.root_models)
    hops = {n: depth.get(n, deepest + 1) for n in shown}  # names only on a cycle: last row
    nodes = tuple(
        Node(keys[n], line(n, 120), _kind(n, hops[n], roots, bases), hops[n]) for n in shown
    )
    edges = tuple(
        Edge(keys[e.child], keys[e.base], e.relation, ", ".join(line(s, 120) for s in e.sources))
        for e in origin.lineage
        if e.child in keys and e.base in keys
    )
    note = () if target in position else (Para(f"The scanned model is {line(target, 120)}."),)
    return (*note, Lineage(nodes, edges), *left_out(more, "models in the lineage"))


def _kind(name: str, depth: int, roots: set[str], bases: set[str]) -> NodeKind:
    if depth == 0 and name not in bases:
        return "target"
    return "root" if name in roots else "base"
