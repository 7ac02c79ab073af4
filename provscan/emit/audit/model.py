"""What is an audit report made of? Format-free blocks that the Markdown and HTML renderers draw.

Every string in these blocks is plain, unescaped text (much of it from the scanned model):
escaping is the renderer's job, done in one place per format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# good: green, warn: amber, bad: red; None: no emphasis. Renderers always show the text too.
Tone = Literal["good", "warn", "bad"]
NodeKind = Literal["target", "base", "root"]


@dataclass(frozen=True)
class Cell:
    """One value: plain text, optionally monospaced (hashes, paths, ids) and toned."""

    text: str
    mono: bool = False
    tone: Tone | None = None


@dataclass(frozen=True)
class Facts:
    """A short list of labelled values (a definition list)."""

    rows: tuple[tuple[str, Cell], ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Para:
    """A sentence or two; `tone` marks a warning or a cap note."""

    text: str
    tone: Tone | None = None


@dataclass(frozen=True)
class Quote:
    """A licence's own words, quoted, with where they come from."""

    text: str
    cite: str


@dataclass(frozen=True)
class Verbatim:
    """Text shown exactly as it is (a prompt, a model's output), under a label."""

    label: str
    text: str


@dataclass(frozen=True)
class Node:
    """One model in the lineage."""

    key: str  # a generated id (n0, n1 ...), never scanned text
    label: str
    kind: NodeKind
    depth: int  # hops from the scanned model


@dataclass(frozen=True)
class Edge:
    child: str  # Node.key
    base: str  # Node.key
    relation: str
    sources: str  # where the claim was read (card, adapter config, GGUF metadata)


@dataclass(frozen=True)
class Lineage:
    """The base-model graph: the scanned model at depth 0, each base one hop further."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


@dataclass(frozen=True)
class Sub:
    """A titled group of blocks inside a section (one licence, one signature, one area)."""

    title: str
    blocks: tuple[Block, ...]
    tone: Tone | None = None


Block = Facts | Table | Para | Quote | Verbatim | Lineage | Sub


@dataclass(frozen=True)
class Section:
    key: str  # anchor id, fixed by provscan
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class VerdictView:
    """The decision (None: no policy evaluated), how to show it, and the reasons by level."""

    decision: str | None
    label: str  # "DENY", or "NO POLICY EVALUATED"
    tone: Tone | None
    summary: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class AuditDoc:
    title: str
    meta: Facts
    verdict: VerdictView
    sections: tuple[Section, ...]
