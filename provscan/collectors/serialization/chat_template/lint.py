"""Does a chat template reach for Python internals (server-side template injection) when rendered?

Runtimes render `tokenizer.chat_template` with Jinja (llama-cpp-python, vLLM, SGLang), some
outside a sandbox; public SSTI payloads climb from any object to `os.popen` through dunder
attributes and Jinja's default globals. Two independent checks look for them.

The static check never renders: it parses the template with Jinja's own lexer and parser
(which build an AST and run nothing) and searches the AST. Besides the literal climbing
patterns (dunder and private names, gadget globals, `os`/`popen`), it flags every place where
a name is *computed* at render time and then used to read an attribute, because that is how
a payload hides its dunders from a literal search (`x[a ~ b]`, `|attr(name)`,
`|map(attribute=name)`, `'{0.x}'.format` with a built format string): Jinja's `x[key]` falls
back to `getattr(x, key)` for a string key, so a computed string key is an attribute read.
Subscripts whose key is provably a number (`messages[loop.index0 - 1]`, `out[:-1]`) are
indexing, not attribute reads. Without jinja2, or when Jinja cannot parse the text, a
regular-expression pass over the `{{ }}` / `{% %}` blocks stands in.

The dynamic check (chat_template_sandbox.py) renders the template in Jinja's immutable
sandbox, as transformers does, in a bounded child process, and reports every access the
sandbox refused: whatever the static check missed, a name built at render time reaches the
sandbox as the attribute it spells.

Real chat templates (ChatML, Llama 3.1, Gemma, Mistral, DeepSeek, Qwen 2.5: see the tests)
use none of these patterns and render in the sandbox without a refusal, so any hit is worth
a person's look.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from provscan.collectors.serialization.chat_template.sandbox import (
    SandboxResult,
    render_check,
)
from provscan.collectors.serialization.chat_template.sandbox import (
    generation_extension as generation_extension,  # the probes' renderer imports it from here
)

# Bound on the text handed to Jinja's parser; longer templates get the regex pass only.
TEMPLATE_PARSE_MAX = 1024 * 1024
EXCERPT_MAX = 120
EXCERPTS_PER_PATTERN = 20  # a report quotes at most 20 excerpts in all
RENDER_CACHE_MAX = 64  # sandbox results kept, by template digest (a scan sees a template twice)

UNCHECKED = "unparseable-template"  # the pattern name lint gives when a check could not run

# Default Jinja globals whose functions expose `__globals__` (the classic gadgets), and
# Flask/template names an attacker reaches for.
GADGET_NAMES = frozenset({"cycler", "joiner", "lipsum", "self", "request", "config", "url_for"})
# Globals real templates call (`namespace(...)`, `dict(...)`, `range(...)`) but never use as
# values: `namespace.__init__`, `namespace|attr(x)` are the start of a climb.
CALLABLE_GLOBALS = frozenset({"namespace", "dict", "range"})
DANGEROUS_NAMES = frozenset(
    {"os", "sys", "subprocess", "importlib", "builtins", "eval", "exec", "compile", "getattr",
     "setattr", "open", "globals", "locals", "vars", "__import__", "__builtins__"}
)  # fmt: skip
DANGEROUS_ATTRIBUTES = frozenset(
    {"os", "sys", "popen", "system", "spawn", "spawnv", "subprocess", "check_output", "Popen",
     "eval", "exec", "compile", "import_module", "getattr", "setattr", "modules", "builtins",
     "load_module", "mro", "f_globals", "f_back", "f_builtins", "f_locals", "gi_frame",
     "gi_code", "cr_frame", "ag_frame", "tb_frame", "func_globals", "_module"}
)  # fmt: skip

# Subscript keys that only a payload uses (`lipsum.__globals__['os']`); kept narrower than
# the attribute list because templates index dicts by ordinary words.
DANGEROUS_KEYS = frozenset({"os", "sys", "popen", "subprocess", "eval", "exec", "__import__"})

# Filters that read an attribute named by a string argument (Jinja's attribute getter falls
# back from item to attribute), with the position of that argument among the filter's own
# arguments; every one of them also takes it as `attribute=`. `map`'s first argument names a
# filter instead (`map('attr', name)`), as `select`'s and `reject`'s name a test.
ATTRIBUTE_FILTERS: dict[str, int | None] = {
    "attr": 0, "selectattr": 0, "rejectattr": 0, "groupby": 0, "sum": 0, "join": 1,
    "unique": 1, "min": 1, "max": 1, "sort": 2, "map": None,
}  # fmt: skip
FILTER_NAMING_FILTERS = frozenset({"map", "select", "reject"})
# Filters (and `loop` attributes) whose result is always a number: a subscript by one indexes.
NUMERIC_FILTERS = frozenset({"length", "count", "int", "float", "abs", "round", "wordcount"})
LOOP_NUMBERS = frozenset({"index", "index0", "revindex", "revindex0", "length", "depth", "depth0"})
# str.format reads attributes named in its format string (`'{0.__class__}'.format(x)`).
FORMAT_METHODS = frozenset({"format", "format_map"})
# Filters whose arguments join pieces into one string (`['_', '_']|join`, `'%s'|format('_')`).
BUILDING_FILTERS = frozenset({"join", "format"})

# How the dynamic check's refusals are named among the patterns. A refused mutation (a list's
# `append`: only the immutable sandbox refuses it) reaches no internals: it is UNCHECKED.
SANDBOX_PATTERNS = {
    "attribute": "sandbox-refused-attribute",
    "callable": "sandbox-refused-call",
    "security-error": "sandbox-security-error",
}

_TAG_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_ESCAPED_UNDERSCORE_RE = re.compile(r"\\x5f|\\u005f|\\U0000005f|\\137|\\N\{LOW LINE\}", re.I)
_STRING_LITERAL_RE = re.compile(r"'[^']*'|\"[^\"]*\"")
_DOTTED_NAME_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
# Patterns over string literals (how payloads spell names) ...
_REGEX_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("dunder-attribute", re.compile(r"__[A-Za-z]\w*__")),
    ("private-attribute", re.compile(r"_TemplateReference__context|\._[A-Za-z]")),
    ("attr-filter", re.compile(r"\|\s*attr\s*\(")),
    ("escaped-underscore", _ESCAPED_UNDERSCORE_RE),
    ("char-format", re.compile(r"%c|\{:c\}|\|\s*format\b.*\b95\b", re.S)),
    ("underscore-string-building", re.compile(r"""(['"])_+\1\s*(?:[~+*]|\|\s*join)""")),
    ("template-import", re.compile(r"\{%-?\s*(?:import|from|include|extends)\b")),
)
# ... and over code with its string literals blanked (names, so 'the request' is not a hit).
_NAME_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("jinja-global-gadget", re.compile(r"\b(?:" + "|".join(sorted(GADGET_NAMES)) + r")\b")),
    ("dangerous-name", re.compile(r"\b(?:os|subprocess|popen|eval|exec|getattr)\b")),
    # A subscript whose key starts with a name or a built string, unless it is loop's counter.
    (
        "computed-key",
        re.compile(
            r"\[\s*(?!loop\.(?:index0?|revindex0?|length)\b)"
            r"(?:[A-Za-z_(]|(['\"]) *\1\s*[~+%|])"
        ),
    ),
)


def _excerpt(text: str, lineno: int | None = None, start: int | None = None) -> str:
    if start is not None:
        snippet = text[max(0, start - 20) : start + EXCERPT_MAX - 20]
    else:
        lines = text.splitlines() or [""]
        snippet = lines[min(max((lineno or 1) - 1, 0), len(lines) - 1)].strip()
    return snippet.replace("\n", " ")[:EXCERPT_MAX]


def _regex_lint(template: str) -> list[tuple[str, str]]:
    """The fallback: patterns over the code inside `{{ }}` and `{% %}`, never over plain text."""
    hits: list[tuple[str, str]] = []
    for block in _TAG_RE.finditer(template):
        code = block.group(0)
        bare = _STRING_LITERAL_RE.sub(lambda m: "'" + " " * (len(m.group(0)) - 2) + "'", code)
        for patterns, text in ((_REGEX_PATTERNS, code), (_NAME_PATTERNS, bare)):
            for name, pattern in patterns:
                match = pattern.search(text)
                if match is not None:
                    hits.append((name, _excerpt(template, start=block.start() + match.start())))
    return hits


def _jinja_ast(template: str) -> Any | None:
    """Jinja's parse tree of the template (parsing only: nothing is rendered), or None."""
    try:
        import jinja2
    except ImportError:
        return None

    # The same extensions transformers' chat-template environment enables. Autoescape is
    # moot: this environment only parses and never renders.
    env = jinja2.Environment(  # noqa: S701
        extensions=["jinja2.ext.loopcontrols", generation_extension()]
    )
    try:
        return env.parse(template)
    except (jinja2.TemplateSyntaxError, RecursionError, ValueError):
        return None


def _walk(root: Any) -> Iterator[Any]:
    """Every node, each parent before its children."""
    stack = [root]  # explicit stack: a deeply nested template must not exhaust recursion
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.iter_child_nodes())


def _is_underscores(node: Any) -> bool:
    from jinja2 import nodes

    value = node.value if isinstance(node, nodes.Const) else None
    return isinstance(value, str) and value != "" and value.strip("_") == ""


def _is_text(node: Any) -> bool:
    from jinja2 import nodes

    return isinstance(node, nodes.Const) and isinstance(node.value, str)


@dataclass(frozen=True)
class _KeysOf:
    """A loop variable that takes the keys of the named container (`for k in d`, `d|items`)."""

    container: str
    body_rebinds: bool  # the loop body assigns that name again


_RANGE = object()  # the value of a `for i in range(...)` variable: an int


@dataclass(frozen=True)
class _Stores:
    """Every value each name (or namespace attribute) is given anywhere in the template: an
    expression node, a loop's _KeysOf or _RANGE, or None where it is not a plain expression
    (a macro argument, an unpacked value)."""

    values: dict[Any, list[Any]]
    callees: frozenset[int]  # ids of the Name nodes that are called directly
    opaque: frozenset[str]  # namespaces built with positional or ** arguments
    # Names whose object is passed around (`m(ns)`, `{% set l = loop %}`), not only read
    # through (`ns.index`, `loop.index0`) or called: an alias could change or iterate it.
    escaped: frozenset[str]


@dataclass(frozen=True)
class _Facts:
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
    literal sequence, _RANGE for `range(...)`, the container for its keys, or None."""
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
        return [(target, _RANGE)]
    container = _iterated_container(loop)
    if container is not None:
        keys = _KeysOf(container, id(loop) in rebinding)
        return [(names[0], keys), *((name, None) for name in names[1:])]
    return [(name, None) for name in names]


def _stores(tree: Any) -> _Stores:
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

    for node in _walk(tree):
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
    return _Stores(values, frozenset(callees), frozenset(opaque), frozenset(escaped))


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


def _facts(tree: Any) -> _Facts:
    from jinja2 import nodes

    stores = _stores(tree)
    # A `for i in range(...)` variable is an int, unless the template redefines `range`.
    integer = None if "range" in stores.values else nodes.Const(0)
    values = {
        key: [integer if value is _RANGE else value for value in given]
        for key, given in stores.values.items()
    }
    names = [key for key in values if isinstance(key, str)]
    namespaces = frozenset(n for n in names if all(map(_is_namespace_call, values[n])))
    keys_of = {
        name: given[0].container
        for name, given in values.items()
        if len(given) == 1 and isinstance(given[0], _KeysOf) and not given[0].body_rebinds
    }
    facts = _Facts(
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


def _numeric_keys(values: dict[Any, list[Any]], stores: _Stores, facts: _Facts) -> frozenset[Any]:
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


def _number_parts(node: Any, facts: _Facts) -> tuple[bool, list[Any]]:
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


def _numeric(node: Any, facts: _Facts) -> bool:
    """Is this expression a number whatever the render (so a subscript by it indexes)?"""
    plain, reads = _number_parts(node, facts)
    return plain and all(read in facts.numeric for read in reads)


def _is_private(part: str) -> bool:
    return part.startswith("_") and part.strip("_") != ""


def _private_name_hits(name: str) -> Iterator[str]:
    """A dotted attribute name (`function.name`) with a dunder or private part."""
    parts = name.split(".")
    if any(part.startswith("__") and part.endswith("__") and len(part) > 4 for part in parts):
        yield "dunder-attribute"
    elif any(part.startswith("_") for part in parts):
        yield "private-attribute"


def _plain_format(node: Any) -> bool:
    """A literal format string whose fields read no attribute or item (`'{} {name}'`)."""
    if not _is_text(node):
        return False
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(node.value) if field]
    except ValueError:
        return False
    return not any("." in field or "[" in field for field in fields)


def _getattr_hits(node: Any, facts: _Facts) -> Iterator[str]:
    from jinja2 import nodes

    attr = node.attr
    if attr.startswith("__") and attr.endswith("__"):
        yield "dunder-attribute"
    elif attr.startswith("_"):
        yield "private-attribute"
    on_namespace = isinstance(node.node, nodes.Name) and node.node.name in facts.namespaces
    if attr in DANGEROUS_ATTRIBUTES and not on_namespace:
        yield "dangerous-attribute"
    if attr in FORMAT_METHODS and not _plain_format(node.node):
        yield "format-method"


def _key_hits(key: Any) -> Iterator[str]:
    if isinstance(key, str) and key.startswith("_"):
        yield "dunder-attribute" if key.startswith("__") else "private-attribute"
    if isinstance(key, str) and key in DANGEROUS_KEYS:
        yield "dangerous-attribute"


def _getitem_hits(node: Any, facts: _Facts) -> Iterator[str]:
    """A subscript by a literal is judged by the key; by anything else it must be plainly
    safe, because a string key falls back to getattr(x, key) in Jinja: a number or slice
    (indexing), a name only ever given literals, a literal container (one lookup on a plain
    dict or list reaches nothing), or the container the key was drawn from (`d[k]` in
    `for k in d`: the lookup succeeds)."""
    from jinja2 import nodes

    arg, base = node.arg, node.node
    if isinstance(arg, nodes.Const):
        yield from _key_hits(arg.value)
    elif isinstance(arg, nodes.Name) and arg.name in facts.literals:
        for literal in facts.literals[arg.name]:
            yield from _key_hits(literal.value)
    elif not (
        isinstance(arg, nodes.Slice)
        or _numeric(arg, facts)
        or (isinstance(base, nodes.Name) and base.name in facts.containers)
        or (
            isinstance(base, nodes.Name)
            and isinstance(arg, nodes.Name)
            and facts.keys_of.get(arg.name) == base.name
        )
    ):
        yield "computed-key"  # `x[a ~ b]`


def _name_hits(node: Any, facts: _Facts) -> Iterator[str]:
    # `namespace` as a value (not called) is a gadget, unless it is the template's own name.
    as_value = node.name in CALLABLE_GLOBALS - facts.stored and id(node) not in facts.callees
    if node.name in GADGET_NAMES or as_value:
        yield "jinja-global-gadget"
    if node.name in DANGEROUS_NAMES:
        yield "dangerous-name"


def _attribute_arguments(node: Any, position: int | None) -> list[Any]:
    """The arguments of an attribute-reading filter that name the attribute."""
    named = [keyword.value for keyword in node.kwargs if keyword.key == "attribute"]
    if position is not None and len(node.args) > position:
        named.append(node.args[position])
    return named + [extra for extra in (node.dyn_args, node.dyn_kwargs) if extra is not None]


def _filter_hits(node: Any) -> Iterator[str]:
    if node.name == "attr":
        yield "attr-filter"  # the way around `.`-based checks, whatever its argument
    names: list[Any] = []
    if node.name in ATTRIBUTE_FILTERS:
        names = _attribute_arguments(node, ATTRIBUTE_FILTERS[node.name])
    if node.name in FILTER_NAMING_FILTERS and node.args:
        chosen = node.args[0]
        if not _is_text(chosen):
            yield "computed-filter-name"  # `map(f, ...)`: which filter runs is decided late
        elif chosen.value in ATTRIBUTE_FILTERS:  # `map('attr', name)`
            yield from ["attr-filter"] if chosen.value == "attr" else []
            names = [*node.args[1:], *(keyword.value for keyword in node.kwargs)]
            names += [extra for extra in (node.dyn_args, node.dyn_kwargs) if extra is not None]
    for name in names:
        if not _is_text(name):
            yield "computed-attribute"
        else:
            yield from _private_name_hits(name.value)
            if DANGEROUS_ATTRIBUTES.intersection(name.value.split(".")):
                yield "dangerous-attribute"  # map(attribute='mro')
    if node.name in BUILDING_FILTERS and any(_is_underscores(arg) for arg in node.args):
        yield "underscore-string-building"


def _string_hits(value: str) -> Iterator[str]:
    if "__" in value:
        yield "dunder-string"
    elif _DOTTED_NAME_RE.fullmatch(value) and any(_is_private(p) for p in value.split(".")):
        yield "private-string"  # '_module', 'x._TemplateReference__context'; not a bare '_'
    if "%c" in value or "{:c}" in value:
        yield "char-format"


def _node_hits(node: Any, facts: _Facts) -> Iterator[str]:
    """The pattern names one AST node matches."""
    from jinja2 import nodes

    if isinstance(node, nodes.Getattr):
        yield from _getattr_hits(node, facts)
    elif isinstance(node, nodes.Getitem):
        yield from _getitem_hits(node, facts)
    elif isinstance(node, nodes.Name) and node.ctx == "load":
        yield from _name_hits(node, facts)
    elif isinstance(node, nodes.Filter):
        yield from _filter_hits(node)
    elif isinstance(node, nodes.Const) and isinstance(node.value, str):
        yield from _string_hits(node.value)
    elif isinstance(node, nodes.Concat | nodes.Add | nodes.Mul | nodes.Mod):
        operands = node.nodes if isinstance(node, nodes.Concat) else [node.left, node.right]
        if any(_is_underscores(op) for op in operands):
            yield "underscore-string-building"
    elif isinstance(node, nodes.List | nodes.Tuple):
        if any(_is_underscores(item) for item in node.items):
            yield "underscore-string-building"  # ['_', '_', 'class', '_', '_']|join
    elif isinstance(node, nodes.Keyword) and node.key.startswith("_"):
        # dict(__class__=1)|first builds the name without a literal
        yield "dunder-string" if node.key.startswith("__") else "private-string"
    elif isinstance(node, nodes.NSRef):
        yield from _private_name_hits(node.attr)
    elif isinstance(node, nodes.Import | nodes.FromImport | nodes.Include | nodes.Extends):
        yield "template-import"


def _needle(node: Any) -> str | None:
    """The source text a node most likely came from, to centre its excerpt on."""
    for attribute in ("attr", "name", "key", "value"):
        value = getattr(node, attribute, None)
        if isinstance(value, str) and value:
            return value
    arg = getattr(node, "arg", None)
    return _needle(arg) if arg is not None else None


def _ast_lint(template: str, tree: Any) -> list[tuple[str, str]]:
    hits: list[tuple[str, str]] = []
    line_starts = [0, *(m.end() for m in re.finditer("\n", template))]
    facts = _facts(tree)
    quoted: dict[str, int] = {}  # excerpts taken per pattern: a hostile template has many
    for node in _walk(tree):
        for name in _node_hits(node, facts):
            quoted[name] = quoted.get(name, 0) + 1
            if quoted[name] > EXCERPTS_PER_PATTERN:
                continue
            lineno = getattr(node, "lineno", 1) or 1
            line_start = line_starts[min(lineno, len(line_starts)) - 1]
            needle = _needle(node)
            found = template.find(needle, line_start) if needle else -1
            if found >= 0:
                hits.append((name, _excerpt(template, start=found)))
            else:
                hits.append((name, _excerpt(template, lineno=lineno)))
    # The lexer decodes escapes, so `'\x5f\x5f'` already shows as a dunder string; a raw
    # escaped underscore in template code is still named, as no real template writes one.
    for block in _TAG_RE.finditer(template):
        match = _ESCAPED_UNDERSCORE_RE.search(block.group(0))
        if match is not None:
            hits.append(("escaped-underscore", _excerpt(template, start=block.start())))
            break
    return hits


def static_lint(template: str) -> list[tuple[str, str]]:
    """The static check alone: (pattern name, excerpt) per pattern found, nothing rendered.

    A template Jinja cannot parse gives (UNCHECKED, reason) plus the regex pass's hits.
    """
    tree = _jinja_ast(template) if len(template) <= TEMPLATE_PARSE_MAX else None
    if tree is not None:
        hits = _ast_lint(template, tree)
    else:
        hits = _regex_lint(template)
        if _jinja_available():
            too_large = len(template) > TEMPLATE_PARSE_MAX
            hits.insert(
                0, (UNCHECKED, "too large to parse" if too_large else "Jinja cannot parse it")
            )
    return list(dict.fromkeys(hits))  # keep order, drop repeats


_RENDERED: dict[str, SandboxResult] = {}


def _rendered(template: str) -> SandboxResult:
    """render_check, once per template text (a GGUF and its tokenizer_config often share one).
    Only finished renders are kept: a timeout on a busy machine is worth a second try."""
    key = hashlib.sha256(template.encode("utf-8", errors="surrogatepass")).hexdigest()
    cached = _RENDERED.get(key)
    if cached is not None:
        return cached
    result = render_check(template)
    if result.unchecked is None:
        while len(_RENDERED) >= RENDER_CACHE_MAX:
            _RENDERED.pop(next(iter(_RENDERED)), None)
        _RENDERED[key] = result
    return result


def sandbox_lint(template: str) -> list[tuple[str, str]]:
    """The dynamic check alone: (pattern name, description) per access the sandbox refused,
    and (UNCHECKED, reason) when the template could not be rendered to the end."""
    if not _jinja_available():
        return [(UNCHECKED, "jinja2 is not installed: the template was not rendered in a sandbox")]
    if len(template) > TEMPLATE_PARSE_MAX:
        return [(UNCHECKED, "too large to render")]
    result = _rendered(template)
    hits: list[tuple[str, str]] = []
    for refusal in result.refusals:
        if refusal.kind == "mutation":
            # Changing a list or dict reaches no internals, but the render stopped there.
            hits.append((UNCHECKED, f"rendered only up to a {refusal.describe()}"))
        else:
            hits.append((SANDBOX_PATTERNS.get(refusal.kind, "sandbox-refusal"), refusal.describe()))
    if result.unchecked is not None:
        hits.append((UNCHECKED, result.unchecked))
    return hits


def lint_chat_template(template: str) -> list[tuple[str, str]]:
    """(pattern name, excerpt) for each injection pattern either check found; empty when clean.

    (UNCHECKED, reason) entries say what could not be checked: a template Jinja cannot
    parse (which no Jinja runtime can render either, so it is not rendered), a render that
    did not finish, or a missing jinja2.
    """
    hits = static_lint(template)
    if not any(name == UNCHECKED for name, _ in hits):
        hits += sandbox_lint(template)
    return list(dict.fromkeys(hits))


def _jinja_available() -> bool:
    try:
        import jinja2  # noqa: F401
    except ImportError:
        return False
    return True
