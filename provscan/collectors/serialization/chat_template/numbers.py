"""Which names and expressions of a chat template are always numbers, literals or keys?"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

# Filters (and `loop` attributes) whose result is always a number: a subscript by one indexes.
NUMERIC_FILTERS = frozenset({"length", "count", "int", "float", "abs", "round", "wordcount"})
LOOP_NUMBERS = frozenset({"index", "index0", "revindex", "revindex0", "length", "depth", "depth0"})


def walk(root: Any) -> Iterator[Any]:
    """Every node, each parent before its children."""
    stack = [root]  # explicit stack: a deeply nested template must not exhaust recursion
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.iter_child_nodes())


@dataclass(frozen=True)
class KeysOf:
    """A loop variable that takes the keys of the named container (`for k in d`, `d|items`)."""

    container: str
    body_rebinds: bool  # the loop body assigns that name again


RANGE = object()  # the value of a `for i in range(...)` variable: an int


@dataclass(frozen=True)
class Stores:
    """Every value each name (or namespace attribute) is given anywhere in the template: an
    expression node, a loop's KeysOf or RANGE, or None where it is not a plain expression
    (a macro argument, an unpacked value)."""

    values: dict[Any, list[Any]]
    callees: frozenset[int]  # ids of the Name nodes that are called directly
    opaque: frozenset[str]  # namespaces built with positional or ** arguments
    # Names whose object is passed around (`m(ns)`, `{% set l = loop %}`), not only read
    # through (`ns.index`, `loop.index0`) or called: an alias could change or iterate it.
    escaped: frozenset[str]


@dataclass(frozen=True)
class Facts:
    """What the whole template says about its names, for judging one node."""

    namespaces: frozenset[str]  # names only ever assigned `namespace(...)`
    numeric: frozenset[Any]  # names, and (namespace, attribute) pairs, only ever numbers
    literals: dict[str, list[Any]]  # names only ever given literals: those Const nodes
    containers: frozenset[str]  # names only ever given a literal list/tuple/dict of literals
    keys_of: dict[str, str]  # loop variables that take the keys of the named container
    callees: frozenset[int]
    stored: frozenset[str]  # every name the template assigns itself
    loop_is_jinjas: bool  # the template never assigns `loop` itself


def _names_stored_by(node: Any) -> list[str]:
    """The names this one node assigns: a target or argument, a macro's or import's name."""
    from jinja2 import nodes

    if isinstance(node, nodes.Name):
        return [node.name] if node.ctx in ("store", "param") else []
    if isinstance(node, nodes.Macro):
        return [node.name]
    if isinstance(node, nodes.Import):
        return [node.target]
    if isinstance(node, nodes.FromImport):
        return [entry[1] if isinstance(entry, tuple) else entry for entry in node.names]
    return []


def _iterated_container(loop: Any) -> str | None:
    """The name whose keys a (non-recursive) loop takes: `for k in d`, `for k, v in d|items`
    (or `d|dictsort`, `d.items()`), `for k in d.keys()`; None for any other loop."""
    from jinja2 import nodes

    source, unpacked = loop.iter, not isinstance(loop.target, nodes.Name)
    base, pairs = source, False
    if isinstance(source, nodes.Filter) and source.name in ("items", "dictsort"):
        base, pairs = source.node, True
    elif isinstance(source, nodes.Call) and isinstance(source.node, nodes.Getattr):
        if source.args or source.kwargs or source.node.attr not in ("items", "keys"):
            return None
        base, pairs = source.node.node, source.node.attr == "items"
    if loop.recursive:  # `loop(other)` reruns the body over `other`
        return None
    if not isinstance(base, nodes.Name) or base.name == "loop" or pairs != unpacked:
        return None
    return str(base.name)


def _rebinding_loops(tree: Any) -> frozenset[int]:
    """Ids of the loops over a container's keys whose body assigns the container's name
    again (so `d[k]` there may read another object). One pass: the loops open at each node
    are kept per container name, with how many of them are already marked."""
    from jinja2 import nodes

    rebinding: set[int] = set()
    open_loops: dict[str, list[int]] = {}
    marked: dict[str, int] = {}  # open loops of that name, from the outermost, marked
    stack: list[tuple[Any, str | None]] = [(tree, None)]  # (node, or loop id, container)
    while stack:
        node, leaving = stack.pop()
        if leaving is not None:  # the end of a loop's body
            open_loops[leaving].pop()
            marked[leaving] = min(marked.get(leaving, 0), len(open_loops[leaving]))
            continue
        for name in _names_stored_by(node):
            opened = open_loops.get(name, [])
            rebinding.update(opened[marked.get(name, 0) :])
            marked[name] = len(opened)
        container = _iterated_container(node) if isinstance(node, nodes.For) else None
        if container is None:
            stack.extend((child, None) for child in node.iter_child_nodes())
            continue
        outside = [node.target, node.iter, *node.else_, *([node.test] if node.test else [])]
        stack.extend((child, None) for child in outside)
        stack.append((node, container))
        open_loops.setdefault(container, []).append(id(node))
        stack.extend((child, None) for child in node.body)
    return frozenset(rebinding)


def _loop_values(loop: Any, rebinding: frozenset[int]) -> list[tuple[Any, Any]]:
    """(target Name node, a value it takes) for each target of a for loop: each literal of a
    literal sequence, RANGE for `range(...)`, the container for its keys, or None."""
    from jinja2 import nodes

    target, source = loop.target, loop.iter
    names = [target] if isinstance(target, nodes.Name) else list(target.find_all(nodes.Name))
    unpacked = not isinstance(target, nodes.Name)
    if isinstance(source, nodes.List | nodes.Tuple) and source.items:
        rows = [
            list(item.items) if unpacked and isinstance(item, nodes.List | nodes.Tuple) else [item]
            for item in source.items
        ]
        if all(len(row) == len(names) and all(_is_const(c) for c in row) for row in rows):
            return [(name, row[i]) for row in rows for i, name in enumerate(names)]
    if (
        not unpacked
        and isinstance(source, nodes.Call)
        and isinstance(source.node, nodes.Name)
        and source.node.name == "range"
    ):
        return [(target, RANGE)]
    container = _iterated_container(loop)
    if container is not None:
        keys = KeysOf(container, id(loop) in rebinding)
        return [(names[0], keys), *((name, None) for name in names[1:])]
    return [(name, None) for name in names]


def _stores(tree: Any) -> Stores:
    from jinja2 import nodes

    values: dict[Any, list[Any]] = {}
    handled: set[int] = set()
    callees: set[int] = set()
    read_through: set[int] = set()  # Name nodes that are the base of a `.attr`
    opaque: set[str] = set()
    escaped: set[str] = set()
    rebinding = _rebinding_loops(tree)

    def give(key: Any, value: Any) -> None:
        values.setdefault(key, []).append(value)

    for node in walk(tree):
        if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
            name = node.target.name
            value: Any = node.node  # a Call when it is `namespace(...)`
            give(name, value)
            handled.add(id(node.target))
            if _is_namespace_call(value):
                for keyword in value.kwargs:
                    give((name, keyword.key), keyword.value)
                if value.args or value.dyn_args or value.dyn_kwargs:
                    opaque.add(name)
        elif isinstance(node, nodes.Assign) and isinstance(node.target, nodes.NSRef):
            give((node.target.name, node.target.attr), node.node)
        elif isinstance(node, nodes.For):
            for target, value in _loop_values(node, rebinding):
                give(target.name, value)
                handled.add(id(target))
        elif isinstance(node, nodes.With):
            for target, value in zip(node.targets, node.values, strict=False):
                if isinstance(target, nodes.Name):
                    give(target.name, value)
                    handled.add(id(target))
        elif isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
            read_through.add(id(node.node))
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            callees.add(id(node.node))
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            if id(node) not in read_through and id(node) not in callees:
                escaped.add(node.name)
        elif id(node) not in handled:
            for name in _names_stored_by(node):  # macro arguments, loop variables unpacked
                give(name, None)
    return Stores(values, frozenset(callees), frozenset(opaque), frozenset(escaped))


def _is_const(node: Any) -> bool:
    from jinja2 import nodes

    return isinstance(node, nodes.Const)


def _is_literal_container(node: Any) -> bool:
    """A list, tuple or dict written out in the template, holding only literals."""
    from jinja2 import nodes

    if isinstance(node, nodes.List | nodes.Tuple):
        return all(_is_const(item) or _is_literal_container(item) for item in node.items)
    if isinstance(node, nodes.Dict):
        leaves = [part for pair in node.items for part in (pair.key, pair.value)]
        return all(_is_const(leaf) or _is_literal_container(leaf) for leaf in leaves)
    return False


def _is_namespace_call(node: Any) -> bool:
    from jinja2 import nodes

    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Name)
        and node.node.name == "namespace"
    )


def facts_of(tree: Any) -> Facts:
    from jinja2 import nodes

    stores = _stores(tree)
    # A `for i in range(...)` variable is an int, unless the template redefines `range`.
    integer = None if "range" in stores.values else nodes.Const(0)
    values = {
        key: [integer if value is RANGE else value for value in given]
        for key, given in stores.values.items()
    }
    names = [key for key in values if isinstance(key, str)]
    namespaces = frozenset(n for n in names if all(map(_is_namespace_call, values[n])))
    keys_of = {
        name: given[0].container
        for name, given in values.items()
        if len(given) == 1 and isinstance(given[0], KeysOf) and not given[0].body_rebinds
    }
    facts = Facts(
        namespaces=namespaces,
        numeric=frozenset(),
        literals={n: values[n] for n in names if all(map(_is_const, values[n]))},
        containers=frozenset(n for n in names if all(map(_is_literal_container, values[n]))),
        keys_of={} if "loop" in stores.escaped else keys_of,
        callees=stores.callees,
        stored=frozenset(names),
        loop_is_jinjas="loop" not in values,
    )
    return replace(facts, numeric=_numeric_keys(values, stores, facts))


def _numeric_keys(values: dict[Any, list[Any]], stores: Stores, facts: Facts) -> frozenset[Any]:
    """The names and namespace attributes only ever given numbers. A key is not numeric when
    one of its values is not a number by itself or reads a key that is not numeric: the
    non-numeric keys are found once each and spread to their readers (linear time)."""
    readers: dict[Any, list[Any]] = {}
    bad: set[Any] = set()
    for key, given in values.items():
        if isinstance(key, tuple) and (
            key[0] not in facts.namespaces or key[0] in stores.opaque | stores.escaped
        ):
            bad.add(key)  # an attribute of a namespace that could be changed through an alias
        for value in given:
            plain, reads = _number_parts(value, facts) if value is not None else (False, [])
            if not plain or any(read not in values for read in reads):
                bad.add(key)
            for read in reads:
                readers.setdefault(read, []).append(key)
    queue = list(bad)
    while queue:
        for reader in readers.get(queue.pop(), []):
            if reader not in bad:
                bad.add(reader)
                queue.append(reader)
    return frozenset(values) - bad


def _number_parts(node: Any, facts: Facts) -> tuple[bool, list[Any]]:
    """Is this expression a number, given that the keys it reads are: (whether its other
    parts are all numbers, the names and namespace attributes it reads)."""
    from jinja2 import nodes

    arithmetic = (nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow)
    if isinstance(node, nodes.Const):
        return isinstance(node.value, int | float), []
    if isinstance(node, nodes.Filter):
        return node.name in NUMERIC_FILTERS, []
    if isinstance(node, nodes.Name):
        return True, [node.name]
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        owner = node.node.name
        if owner == "loop":
            return facts.loop_is_jinjas and node.attr in LOOP_NUMBERS, []
        return owner in facts.namespaces, [(owner, node.attr)]
    if isinstance(node, nodes.Neg | nodes.Pos):
        parts = [node.node]
    elif isinstance(node, arithmetic):
        parts = [node.left, node.right]
    elif isinstance(node, nodes.CondExpr) and node.expr2 is not None:
        parts = [node.expr1, node.expr2]
    else:
        return False, []
    plain, reads = True, list[Any]()
    for part in parts:
        part_plain, part_reads = _number_parts(part, facts)
        plain, reads = plain and part_plain, reads + part_reads
    return plain, reads


def numeric(node: Any, facts: Facts) -> bool:
    """Is this expression a number whatever the render (so a subscript by it indexes)?"""
    plain, reads = _number_parts(node, facts)
    return plain and all(read in facts.numeric for read in reads)
