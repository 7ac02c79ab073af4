"""Does a chat template reach for Python internals (server-side template injection) when rendered?

Runtimes render `tokenizer.chat_template` with Jinja (llama-cpp-python, vLLM, SGLang), some
outside a sandbox; public SSTI payloads climb from any object to `os.popen` through dunder
attributes and Jinja's default globals. The template is never rendered here: it is parsed
with Jinja's own lexer and parser (which build an AST and run nothing) when jinja2 is
installed, and the AST is searched for the climbing patterns. Without jinja2, or when Jinja
cannot parse the text, a regular-expression pass over the `{{ }}` / `{% %}` blocks stands in.
Real chat templates use none of these patterns (see the tests' Llama-3, ChatML, Gemma and
Mistral templates), so any hit is worth a person's look.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# Bound on the text handed to Jinja's parser; longer templates get the regex pass only.
TEMPLATE_PARSE_MAX = 1024 * 1024
EXCERPT_MAX = 120

UNCHECKED = "unparseable-template"  # the pattern name lint gives when Jinja cannot parse

# Default Jinja globals whose functions expose `__globals__` (the classic gadgets), and
# Flask/template names an attacker reaches for. `namespace` is left out: real templates
# (Qwen, DeepSeek) use it, and climbing out of it needs a dunder, which is caught anyway.
GADGET_NAMES = frozenset({"cycler", "joiner", "lipsum", "self", "request", "config", "url_for"})
DANGEROUS_NAMES = frozenset(
    {"os", "sys", "subprocess", "importlib", "builtins", "eval", "exec", "compile", "getattr",
     "setattr", "open", "globals", "locals", "vars", "__import__", "__builtins__"}
)  # fmt: skip
DANGEROUS_ATTRIBUTES = frozenset(
    {"os", "sys", "popen", "system", "spawn", "spawnv", "subprocess", "check_output", "Popen",
     "eval", "exec", "compile", "import_module", "getattr", "setattr", "modules", "builtins",
     "load_module", "mro", "f_globals", "f_back", "gi_frame", "func_globals", "_module"}
)  # fmt: skip

# Subscript keys that only a payload uses (`lipsum.__globals__['os']`); kept narrower than
# the attribute list because templates index dicts by ordinary words.
DANGEROUS_KEYS = frozenset({"os", "sys", "popen", "subprocess", "eval", "exec", "__import__"})

_TAG_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_ESCAPED_UNDERSCORE_RE = re.compile(r"\\x5f|\\u005f|\\U0000005f|\\137|\\N\{LOW LINE\}", re.I)
_STRING_LITERAL_RE = re.compile(r"'[^']*'|\"[^\"]*\"")
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


def generation_extension() -> type[Any]:
    """transformers' `{% generation %}` tag (its AssistantTracker marks assistant text with it):
    its body is parsed, and rendered as is. Shared by the linter and the probes' renderer."""
    from jinja2 import nodes
    from jinja2.ext import Extension

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    return Generation


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
    stack = [root]  # explicit stack: a deeply nested template must not exhaust recursion
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.iter_child_nodes())


def _is_underscores(node: Any) -> bool:
    from jinja2 import nodes

    value = node.value if isinstance(node, nodes.Const) else None
    return isinstance(value, str) and value != "" and value.strip("_") == ""


def _namespaces(tree: Any) -> frozenset[str]:
    """Names only ever assigned `namespace(...)`: their attributes (`ns.system`, as chat
    templates keep a system prompt) are plain values, not the modules the names suggest."""
    from jinja2 import nodes

    assigned: dict[str, bool] = {}
    for node in _walk(tree):
        if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
            call = node.node
            is_namespace = (
                isinstance(call, nodes.Call)
                and isinstance(call.node, nodes.Name)
                and call.node.name == "namespace"
            )
            assigned[node.target.name] = assigned.get(node.target.name, True) and is_namespace
        elif isinstance(node, (nodes.For, nodes.Macro, nodes.Assign, nodes.AssignBlock)):
            for target in node.find_all(nodes.Name):
                if target.ctx == "store" and not isinstance(node, nodes.Assign):
                    assigned[target.name] = False
    return frozenset(name for name, only in assigned.items() if only)


def _node_hits(node: Any, namespaces: frozenset[str] = frozenset()) -> Iterator[str]:
    """The pattern names one AST node matches."""
    from jinja2 import nodes

    if isinstance(node, nodes.Getattr):
        attr = node.attr
        if attr.startswith("__") and attr.endswith("__"):
            yield "dunder-attribute"
        elif attr.startswith("_"):
            yield "private-attribute"
        on_namespace = isinstance(node.node, nodes.Name) and node.node.name in namespaces
        if attr in DANGEROUS_ATTRIBUTES and not on_namespace:
            yield "dangerous-attribute"
    elif isinstance(node, nodes.Getitem):
        key = node.arg.value if isinstance(node.arg, nodes.Const) else None
        if isinstance(key, str) and key.startswith("_"):
            yield "dunder-attribute" if key.startswith("__") else "private-attribute"
        if isinstance(key, str) and key in DANGEROUS_KEYS:
            yield "dangerous-attribute"
    elif isinstance(node, nodes.Name) and node.ctx == "load":
        if node.name in GADGET_NAMES:
            yield "jinja-global-gadget"
        if node.name in DANGEROUS_NAMES:
            yield "dangerous-name"
    elif isinstance(node, nodes.Filter) and node.name == "attr":
        # `|attr(x)` reads an attribute by a computed name: the way around `.`-based filters.
        yield "attr-filter"
    elif isinstance(node, nodes.Const) and isinstance(node.value, str):
        if "__" in node.value:
            yield "dunder-string"
        if "%c" in node.value or "{:c}" in node.value:
            yield "char-format"
    elif isinstance(node, (nodes.Concat, nodes.Add, nodes.Mul, nodes.Mod)):
        operands = node.nodes if isinstance(node, nodes.Concat) else [node.left, node.right]
        if any(_is_underscores(op) for op in operands):
            yield "underscore-string-building"
    elif isinstance(node, nodes.Keyword) and node.key.startswith("__"):
        yield "dunder-string"  # dict(__class__=1)|first builds the name without a literal
    elif isinstance(node, (nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
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
    namespaces = _namespaces(tree)
    for node in _walk(tree):
        for name in _node_hits(node, namespaces):
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
    return hits


def lint_chat_template(template: str) -> list[tuple[str, str]]:
    """(pattern name, excerpt) for each injection pattern found; empty for a clean template.

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
    unique: dict[tuple[str, str], None] = dict.fromkeys(hits)  # keep order, drop repeats
    return list(unique)


def _jinja_available() -> bool:
    try:
        import jinja2  # noqa: F401
    except ImportError:
        return False
    return True
