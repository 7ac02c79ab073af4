"""How is the lineage drawn without JavaScript? An inline SVG laid out in rows by hops."""

from __future__ import annotations

from provscan.emit.audit.markup import Markup, join, tag
from provscan.emit.audit.model import Lineage, Node

_CHAR = 7.2  # px per character at the 12px font used (approximate: labels are clipped anyway)
_LABEL = 48  # characters shown in a box; the list under the diagram has the full name
_BOX_H = 34
_ROW_GAP = 56
_COL_GAP = 28
_PAD = 12
_FILL = {"target": "#e8f0fe", "base": "#f4f4f5", "root": "#fff4e0"}


def lineage_svg(lineage: Lineage) -> Markup:
    """The base-model graph: the scanned model on top, each hop one row further down."""
    rows: dict[int, list[Node]] = {}
    for node in lineage.nodes:
        rows.setdefault(node.depth, []).append(node)
    widths = {n.key: _box_width(n.label) for n in lineage.nodes}
    row_width = {
        d: sum(widths[n.key] for n in row) + _COL_GAP * (len(row) - 1) for d, row in rows.items()
    }
    width = max(row_width.values()) + 2 * _PAD
    boxes: dict[str, tuple[float, float, float]] = {}  # key -> x, y, width
    for index, depth in enumerate(sorted(rows)):
        x = (width - row_width[depth]) / 2
        y = _PAD + index * (_BOX_H + _ROW_GAP)
        for node in rows[depth]:
            boxes[node.key] = (x, y, widths[node.key])
            x += widths[node.key] + _COL_GAP
    height = _PAD * 2 + len(rows) * _BOX_H + (len(rows) - 1) * _ROW_GAP
    parts = [_defs()]
    parts += [_edge(boxes[e.child], boxes[e.base], e.relation) for e in lineage.edges]
    parts += [_node(n, boxes[n.key]) for n in lineage.nodes]
    return tag(
        "svg",
        join(parts),
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {width:.0f} {height:.0f}",
        width=f"{width:.0f}",
        role="img",
        aria_label="Lineage: the scanned model and the base models it was made from",
        cls="lineage-svg",
    )


def _box_width(label: str) -> float:
    return min(len(label), _LABEL) * _CHAR + 24


def _short(label: str) -> str:
    return label if len(label) <= _LABEL else label[: _LABEL - 1] + "…"


def _defs() -> Markup:
    arrow = tag("path", d="M0,0 L10,5 L0,10 z", fill="#555")
    marker = tag(
        "marker", arrow, id="arrow", viewBox="0 0 10 10", refX="10", refY="5",
        markerWidth="8", markerHeight="8", orient="auto-start-reverse",
    )  # fmt: skip
    return tag("defs", marker)


def _node(node: Node, box: tuple[float, float, float]) -> Markup:
    x, y, w = box
    rect = tag(
        "rect", x=f"{x:.1f}", y=f"{y:.1f}", width=f"{w:.1f}", height=str(_BOX_H), rx="6",
        fill=_FILL[node.kind], stroke="#333" if node.kind == "target" else "#888",
        stroke_width="2" if node.kind == "target" else "1",
    )  # fmt: skip
    text = tag(
        "text", _short(node.label), x=f"{x + w / 2:.1f}", y=f"{y + _BOX_H / 2 + 4:.1f}",
        text_anchor="middle", font_size="12",
        font_weight="bold" if node.kind == "target" else None,
    )  # fmt: skip
    return tag("g", tag("title", node.label), rect, text)


def _edge(
    child: tuple[float, float, float], base: tuple[float, float, float], relation: str
) -> Markup:
    x1, y1 = child[0] + child[2] / 2, child[1] + _BOX_H
    x2, y2 = base[0] + base[2] / 2, base[1]
    if y2 <= y1:  # a cycle or an edge back up: leave from the side instead of crossing boxes
        x1, y1 = child[0] + child[2], child[1] + _BOX_H / 2
        x2, y2 = base[0] + base[2], base[1] + _BOX_H / 2
    line = tag(
        "line", x1=f"{x1:.1f}", y1=f"{y1:.1f}", x2=f"{x2:.1f}", y2=f"{y2:.1f}",
        stroke="#555", stroke_width="1.5", marker_end="url(#arrow)",
    )  # fmt: skip
    label = tag(
        "text", f"{relation} of", x=f"{(x1 + x2) / 2 + 6:.1f}", y=f"{(y1 + y2) / 2 + 4:.1f}",
        font_size="11", fill="#444", stroke="#fff", stroke_width="4", paint_order="stroke",
    )  # fmt: skip
    return join([line, label])
