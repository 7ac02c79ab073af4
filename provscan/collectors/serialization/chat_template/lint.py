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
regular-expression pass over the `{{ }}` / `{% %}` blocks stands in. What each parse-tree node
matches is hits.py; which values are plainly numbers or literals is numbers.py.

The dynamic check (sandbox.py) renders the template in Jinja's immutable
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
from typing import Any

from provscan.collectors.serialization.chat_template.hits import (
    GADGET_NAMES,
    excerpt_anchor,
    node_hits,
)
from provscan.collectors.serialization.chat_template.numbers import facts_of, walk
from provscan.collectors.serialization.chat_template.sandbox import (
    SandboxResult,
    generation_extension,
    render_check,
)

# Bound on the text handed to Jinja's parser; longer templates get the regex pass only.
TEMPLATE_PARSE_MAX = 1024 * 1024
EXCERPT_MAX = 120
EXCERPTS_PER_PATTERN = 20  # a report quotes at most 20 excerpts in all
RENDER_CACHE_MAX = 64  # sandbox results kept, by template digest (a scan sees a template twice)
UNCHECKED = "unparseable-template"  # the pattern name lint gives when a check could not run
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


def _ast_lint(template: str, tree: Any) -> list[tuple[str, str]]:
    hits: list[tuple[str, str]] = []
    line_starts = [0, *(m.end() for m in re.finditer("\n", template))]
    facts = facts_of(tree)
    quoted: dict[str, int] = {}  # excerpts taken per pattern: a hostile template has many
    for node in walk(tree):
        for name in node_hits(node, facts):
            quoted[name] = quoted.get(name, 0) + 1
            if quoted[name] > EXCERPTS_PER_PATTERN:
                continue
            lineno = getattr(node, "lineno", 1) or 1
            line_start = line_starts[min(lineno, len(line_starts)) - 1]
            needle = excerpt_anchor(node)
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
