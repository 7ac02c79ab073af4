"""Which injection patterns does one node of a chat template's parse tree match?"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import Any

from provscan.collectors.serialization.chat_template.numbers import Facts, numeric

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
# str.format reads attributes named in its format string (`'{0.__class__}'.format(x)`).
FORMAT_METHODS = frozenset({"format", "format_map"})
# Filters whose arguments join pieces into one string (`['_', '_']|join`, `'%s'|format('_')`).
BUILDING_FILTERS = frozenset({"join", "format"})
DOTTED_NAME_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def is_underscores(node: Any) -> bool:
    from jinja2 import nodes

    value = node.value if isinstance(node, nodes.Const) else None
    return isinstance(value, str) and value != "" and value.strip("_") == ""


def is_text(node: Any) -> bool:
    from jinja2 import nodes

    return isinstance(node, nodes.Const) and isinstance(node.value, str)


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
    if not is_text(node):
        return False
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(node.value) if field]
    except ValueError:
        return False
    return not any("." in field or "[" in field for field in fields)


def _getattr_hits(node: Any, facts: Facts) -> Iterator[str]:
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


def _getitem_hits(node: Any, facts: Facts) -> Iterator[str]:
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
        or numeric(arg, facts)
        or (isinstance(base, nodes.Name) and base.name in facts.containers)
        or (
            isinstance(base, nodes.Name)
            and isinstance(arg, nodes.Name)
            and facts.keys_of.get(arg.name) == base.name
        )
    ):
        yield "computed-key"  # `x[a ~ b]`


def _name_hits(node: Any, facts: Facts) -> Iterator[str]:
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
        if not is_text(chosen):
            yield "computed-filter-name"  # `map(f, ...)`: which filter runs is decided late
        elif chosen.value in ATTRIBUTE_FILTERS:  # `map('attr', name)`
            yield from ["attr-filter"] if chosen.value == "attr" else []
            names = [*node.args[1:], *(keyword.value for keyword in node.kwargs)]
            names += [extra for extra in (node.dyn_args, node.dyn_kwargs) if extra is not None]
    for name in names:
        if not is_text(name):
            yield "computed-attribute"
        else:
            yield from _private_name_hits(name.value)
            if DANGEROUS_ATTRIBUTES.intersection(name.value.split(".")):
                yield "dangerous-attribute"  # map(attribute='mro')
    if node.name in BUILDING_FILTERS and any(is_underscores(arg) for arg in node.args):
        yield "underscore-string-building"


def _string_hits(value: str) -> Iterator[str]:
    if "__" in value:
        yield "dunder-string"
    elif DOTTED_NAME_RE.fullmatch(value) and any(_is_private(p) for p in value.split(".")):
        yield "private-string"  # '_module', 'x._TemplateReference__context'; not a bare '_'
    if "%c" in value or "{:c}" in value:
        yield "char-format"


def node_hits(node: Any, facts: Facts) -> Iterator[str]:
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
        if any(is_underscores(op) for op in operands):
            yield "underscore-string-building"
    elif isinstance(node, nodes.List | nodes.Tuple):
        if any(is_underscores(item) for item in node.items):
            yield "underscore-string-building"  # ['_', '_', 'class', '_', '_']|join
    elif isinstance(node, nodes.Keyword) and node.key.startswith("_"):
        # dict(__class__=1)|first builds the name without a literal
        yield "dunder-string" if node.key.startswith("__") else "private-string"
    elif isinstance(node, nodes.NSRef):
        yield from _private_name_hits(node.attr)
    elif isinstance(node, nodes.Import | nodes.FromImport | nodes.Include | nodes.Extends):
        yield "template-import"


def excerpt_anchor(node: Any) -> str | None:
    """The source text a node most likely came from, to centre its excerpt on."""
    for attribute in ("attr", "name", "key", "value"):
        value = getattr(node, attribute, None)
        if isinstance(value, str) and value:
            return value
    arg = getattr(node, "arg", None)
    return excerpt_anchor(arg) if arg is not None else None
