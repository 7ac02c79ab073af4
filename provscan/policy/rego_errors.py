"""What did rego-cpp (the regopy engine) say went wrong, as one 'file:line:col: problem' line?

rego-cpp reports errors as an S-expression, e.g. for a rule whose ``{`` is never closed::

    (rego-errorseq
      (error 17:policies/x/foo.rego|82|2
        (errormsg 16:this is unclosed)
        (errorast |82|2))
      (error 17:policies/x/foo.rego|0|7
        (errormsg 16:this is unclosed)
        (errorast |0|7)))

Strings are length-prefixed in bytes (``16:this is unclosed``), a source location is
``|byte offset|byte length``, and a leaf of the AST may carry its source text after it
(``|85|5:input``, as many bytes as the location's length). The expression is read as a tree,
never searched with patterns: the AST in an error quotes the policy's own text, which may
contain anything, "(errormsg" included.

One mistake usually comes back several times: the unclosed ``{`` above, and again the whole
file (``package``, offset 0) that therefore does not end either. Of the errors that share a
message the narrowest span is the one that points at the mistake; the first message is the
one reported, with a count of any other distinct ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# A token this long or shorter is quoted in the message ("syntax error at ')'").
_MAX_QUOTED = 24


@dataclass
class _Node:
    kind: str
    strings: list[bytes] = field(default_factory=list)
    location: tuple[int, int] | None = None
    children: list[_Node] = field(default_factory=list)


@dataclass(frozen=True)
class RegoIssue:
    """One error: the module it names (if any), where in it (bytes), and rego-cpp's message."""

    module: str | None
    span: tuple[int, int] | None  # (byte offset, byte length) in the module's source
    message: str


class _Reader:
    """A forgiving reader of rego-cpp's S-expressions: stops at the end of the text."""

    def __init__(self, text: bytes) -> None:
        self.text = text
        self.pos = 0

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos : self.pos + 1].isspace():
            self.pos += 1

    def _digits(self) -> int:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos : self.pos + 1].isdigit():
            self.pos += 1
        return int(self.text[start : self.pos] or b"0")

    def _chunk(self, length: int) -> bytes:
        chunk = self.text[self.pos : self.pos + length]
        self.pos += length
        return chunk

    def read_all(self) -> list[_Node]:
        top = _Node("top")
        stack = [top]
        while True:
            self._skip_space()
            if self.pos >= len(self.text):
                break
            char = self.text[self.pos : self.pos + 1]
            node = stack[-1]
            if char == b"(":
                self.pos += 1
                start = self.pos
                while self.pos < len(self.text) and self.text[self.pos] not in b" \t\r\n()":
                    self.pos += 1
                child = _Node(self.text[start : self.pos].decode("utf-8", errors="replace"))
                node.children.append(child)
                stack.append(child)
            elif char == b")":
                self.pos += 1
                if len(stack) > 1:
                    stack.pop()
            elif char.isdigit():
                length = self._digits()
                if self.text[self.pos : self.pos + 1] == b":":
                    self.pos += 1
                    node.strings.append(self._chunk(length))
            elif char == b"|":
                self.pos += 1
                offset = self._digits()
                length = 0
                if self.text[self.pos : self.pos + 1] == b"|":
                    self.pos += 1
                    length = self._digits()
                if node.location is None:
                    node.location = (offset, length)
                if self.text[self.pos : self.pos + 1] == b":":
                    self.pos += 1
                    self._chunk(length)  # the leaf's source text
            else:  # a bare atom such as {}
                while self.pos < len(self.text) and self.text[self.pos] not in b" \t\r\n()":
                    self.pos += 1
        return top.children


def _errors(nodes: list[_Node]) -> list[_Node]:
    found: list[_Node] = []
    for node in nodes:
        if node.kind == "error":
            found.append(node)  # an error's AST holds no further errors worth reporting
        elif node.kind != "errorast":
            found.extend(_errors(node.children))
    return found


def parse_rego_errors(raw: str) -> list[RegoIssue]:
    """Every error in rego-cpp's error text, in order; empty when it holds none."""
    if not raw.lstrip().startswith("("):
        return []
    issues: list[RegoIssue] = []
    for node in _errors(_Reader(raw.encode("utf-8")).read_all()):
        message = next(
            (
                child.strings[0].decode("utf-8", errors="replace").strip()
                for child in node.children
                if child.kind == "errormsg" and child.strings
            ),
            "",
        )
        if not message:
            continue
        module = node.strings[0].decode("utf-8", errors="replace") if node.strings else None
        issues.append(RegoIssue(module, node.location, message))
    return issues


def _line_col(source: bytes, offset: int) -> tuple[int, int]:
    """A byte offset as a 1-based line and (character) column."""
    prefix = source[:offset].decode("utf-8", errors="replace")
    return prefix.count("\n") + 1, len(prefix) - (prefix.rfind("\n") + 1) + 1


def _token(source: bytes, span: tuple[int, int]) -> str:
    """The span's text when it is one short token, else ''."""
    offset, length = span
    text = source[offset : offset + length].decode("utf-8", errors="replace").strip()
    if not text or len(text) > _MAX_QUOTED or "\n" in text or "'" in text:
        return ""
    return text


def _problem(message: str, token: str, label: str) -> str:
    if message == "this is unclosed":
        return f"'{token}' is not closed" if token else "a bracket or quote is not closed"
    if message == "Syntax error":
        return f"syntax error at '{token}'" if token else "syntax error"
    if label and message[:1].isupper() and message[1:2].islower():
        return message[0].lower() + message[1:]  # "parse error: invalid rule head"
    return message


def _where(issue: RegoIssue, sources: Mapping[str, bytes]) -> str:
    if issue.module is None:
        return ""
    source = sources.get(issue.module)
    if source is None or issue.span is None:
        return issue.module
    line, col = _line_col(source, issue.span[0])
    return f"{issue.module}:{line}:{col}"


def describe_rego_errors(raw: str, sources: Mapping[str, str], label: str = "") -> str:
    """rego-cpp's error text as 'module:line:col: [label: ]problem', the first mistake once.

    ``sources`` maps module names to their text (to turn byte offsets into lines). Text
    that holds no error message is returned as it is (never an empty message).
    """
    issues = parse_rego_errors(raw)
    if not issues:
        return raw.strip() or "the engine gave no error detail"
    encoded = {name: text.encode("utf-8") for name, text in sources.items()}
    by_message: dict[str, list[RegoIssue]] = {}
    for issue in issues:
        by_message.setdefault(issue.message, []).append(issue)
    message, same = next(iter(by_message.items()))
    # The narrowest span among the repeats is the one that points at the mistake.
    located = [i for i in same if i.span is not None and i.module in encoded]
    chosen = min(located, key=lambda i: i.span[1] if i.span else 0) if located else same[0]
    source = encoded.get(chosen.module or "")
    token = _token(source, chosen.span) if source is not None and chosen.span else ""
    problem = _problem(message, token, label)
    text = f"{label}: {problem}" if label else problem
    where = _where(chosen, encoded)
    text = f"{where}: {text}" if where else text
    others = len(by_message) - 1
    if others:
        text += f" (and {others} other error{'s' if others > 1 else ''})"
    return text
