"""How is JSON or YAML from the scanned model parsed without a number or a nesting breaking us?

Every JSON document read from the target (config.json, tokenizer_config.json, a safetensors
header, a Keras config, a signature bundle, a cached Hub listing) goes through parse_json,
and the model card's YAML front matter through parse_yaml. Each refuses, with HostileData
(a ValueError naming the problem), what the standard library would otherwise turn into a
crash or a value no two loaders agree on:

* an integer of more than MAX_NUMBER_CHARS characters: Python refuses to convert one of
  over 4300 digits (a ValueError that no JSON error handler catches), and the bound must
  not depend on the interpreter's PYTHONINTMAXSTRDIGITS setting; a float literal that long
  likewise;
* NaN, Infinity and -Infinity, which Python's json accepts and JSON (RFC 8259) does not, and
  a float literal beyond the double range (1e999), which Python reads as infinity;
* nesting deeper than MAX_NESTING levels, which the interpreter's recursion limit would stop
  at a depth that depends on how deep the caller's own stack is;
* in YAML, aliases (a few hundred bytes of them expand to gigabytes).

What is not JSON or YAML at all still raises json.JSONDecodeError, UnicodeDecodeError or
yaml.YAMLError, as before: callers report each kind in their own words.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import yaml

from provscan.report import Finding, Location, Severity, located_finding

__all__ = [
    "MAX_NESTING",
    "MAX_NUMBER_CHARS",
    "HostileData",
    "nesting_depth",
    "parse_json",
    "parse_json_as_loaded",
    "hostile_number_findings",
    "parse_yaml",
]

# The longest number literal accepted. Real model metadata has none over ~40 characters
# (tokenizer_config.json's model_max_length of 1e30 written out as an integer has 31).
MAX_NUMBER_CHARS = 1000
# The deepest nesting accepted. Real configs nest under 30 levels (a Keras functional model
# inside another); the interpreter's recursion limit is 1000 frames, shared with the caller.
MAX_NESTING = 128


class HostileData(ValueError):
    """The document parses, but holds what provscan refuses to read: `problem` says what."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _shown(literal: str) -> str:
    return literal if len(literal) <= 24 else f"{literal[:12]}…{literal[-6:]}"


def _long_int(literal: str) -> str:
    digits = len(literal.lstrip("-"))
    return (
        f"holds an integer of {digits:,} digits ({_shown(literal)}), over the "
        f"{MAX_NUMBER_CHARS:,}-character limit: loaders refuse or misread it"
    )


def _long_float(literal: str) -> str:
    return (
        f"holds a number written with {len(literal):,} characters ({_shown(literal)}), "
        f"over the {MAX_NUMBER_CHARS:,}-character limit"
    )


def _int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise HostileData(_long_int(literal))
    return int(literal)


def _float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise HostileData(_long_float(literal))
    value = float(literal)
    if not math.isfinite(value):
        raise HostileData(
            f"holds the number {_shown(literal)}, beyond the range of a double: "
            "Python reads it as infinity, other loaders refuse it"
        )
    return value


def _constant(name: str) -> float:
    raise HostileData(
        f"holds {name}, which is not JSON: Python's json accepts it, others refuse it"
    )


class _Noted:
    """Number hooks that note each hostile number (once per problem) and go on with the value
    Python's own json.loads would give (0 for an integer too long for any loader)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def _note(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    def on_int(self, literal: str) -> int:
        try:
            return _int(literal)
        except ValueError as exc:  # HostileData, or the interpreter's own digit limit
            self._note(_long_int(literal) if not isinstance(exc, HostileData) else exc.problem)
            return 0

    def on_float(self, literal: str) -> float:
        return self._as_loaded(_float, literal)

    def on_constant(self, name: str) -> float:
        return self._as_loaded(_constant, name)

    def _as_loaded(self, check: Callable[[str], float], literal: str) -> float:
        """`check(literal)`, or, when it refuses, the value Python's json gives (noted)."""
        try:
            return check(literal)
        except HostileData as exc:
            self._note(exc.problem)
            return float(literal)


def nesting_depth(document: Any, limit: int = MAX_NESTING) -> int:
    """How deep `document`'s lists and dicts nest (a scalar is 0), counted without recursion;
    stops counting past `limit` (returns limit + 1)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _too_deep() -> HostileData:
    return HostileData(f"is nested too deeply (over {MAX_NESTING} levels)")


def parse_json(
    raw: str | bytes,
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """json.loads(raw) for a document read for its facts (a config, a header, a signature);
    raises HostileData for a hostile number or nesting: a fact read from a document loaders
    disagree on is no fact. json.JSONDecodeError or UnicodeDecodeError: not JSON."""
    try:
        document = json.loads(
            raw,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=object_pairs_hook,
        )
    except RecursionError as exc:
        raise _too_deep() from exc
    if nesting_depth(document) > MAX_NESTING:
        raise _too_deep()
    return document


def parse_json_as_loaded(raw: str | bytes) -> tuple[Any, list[str]]:
    """(document, problems) for a document that carries code (a Keras config, a chat
    template): read as Python's json.loads reads it (NaN and infinity kept, an integer too
    long for any loader read as 0), so that no hostile number hides what it holds from the
    scan; each hostile number is a problem to report besides. Nesting is bounded only by the
    recursion limit, as the loaders' own json.loads is: HostileData when that is passed."""
    noted = _Noted()
    try:
        document = json.loads(
            raw,
            parse_int=noted.on_int,
            parse_float=noted.on_float,
            parse_constant=noted.on_constant,
        )
    except RecursionError as exc:
        raise HostileData("is nested too deeply to parse") from exc
    return document, noted.problems


def hostile_number_findings(
    rel: str, problems: list[str], member: str | None = None
) -> list[Finding]:
    """SER-JSON-HOSTILE-NUMBER for each problem parse_json_as_loaded noted in a file (or in
    one of its members)."""
    where = f"{rel} ({member})" if member else rel
    return [
        located_finding(
            "SER-JSON-HOSTILE-NUMBER",
            Severity.HIGH,
            f"{where}: {problem}; scanned as Python's json reads it, which other loaders do not",
            Location(path=rel, member=member),
            problem=problem,
        )
        for problem in problems
    ]


class _BoundedLoader(yaml.SafeLoader):
    """safe_load that refuses aliases, nesting past MAX_NESTING and over-long integers."""

    _depth = 0
    first_line = 1  # the line number the text starts at in its file

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
            raise HostileData(
                f"uses a YAML alias (line {event.start_mark.line + self.first_line}); aliases are not "
                "allowed: a few hundred bytes of them expand to gigabytes"
            )
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _too_deep()
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # PyYAML keeps a repeated key's last value, in silence; the Hub's YAML reader
        # (js-yaml) refuses the document, other readers keep the first: which licence a
        # card with two `license:` keys has depends on who reads it.
        seen: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + self.first_line
                earlier = seen.setdefault((key.tag, key.value), line)
                if earlier != line:
                    raise HostileData(
                        f"repeats the key {key.value[:80]!r} (lines {earlier} and {line}); "
                        "YAML readers disagree on which value counts"
                    )
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: Any) -> int:
        if isinstance(node.value, str) and len(node.value) > MAX_NUMBER_CHARS:
            _int(node.value)  # raises with the message every parser gives
        value: int = super().construct_yaml_int(node)
        return value

    def construct_yaml_float(self, node: Any) -> float:
        if isinstance(node.value, str) and len(node.value) > MAX_NUMBER_CHARS:
            _float(node.value)
        value: float = super().construct_yaml_float(node)
        return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _BoundedLoader.construct_yaml_float)


class _LenientLoader(_BoundedLoader):
    """The bounded loader that reads what a strict reader refuses, to see every value a
    reader could take: a repeated key keeps all its values (a list, in order), a custom tag
    (`!apache`, `!!python/object`) is ignored and its node read as plain YAML. Each such
    place is recorded in `problems`. Aliases, nesting and numbers stay bounded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.problems: list[str] = []

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        mapping: dict[Any, Any] = {}
        repeated: set[Any] = set()
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                key = str(key)
            value = self.construct_object(value_node, deep=True)
            line = key_node.start_mark.line + self.first_line
            if key in mapping:
                self.problems.append(
                    f"repeats the key {str(key)[:80]!r} (lines {lines[key]} and {line})"
                )
                earlier = mapping[key] if key in repeated else [mapping[key]]
                mapping[key] = [*earlier, *(value if isinstance(value, list) else [value])]
                repeated.add(key)
            else:
                mapping[key] = value
                lines[key] = line
        return mapping

    def construct_tagged(self, tag_suffix: str, node: Any) -> Any:
        line = node.start_mark.line + self.first_line
        self.problems.append(f"uses the custom tag {node.tag[:80]!r} (line {line})")
        if isinstance(node, yaml.MappingNode):
            return self.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return [self.construct_object(child, deep=True) for child in node.value]
        return str(node.value)


_LenientLoader.add_multi_constructor("", _LenientLoader.construct_tagged)


def parse_yaml_leniently(text: str, *, first_line: int = 1) -> tuple[Any, list[str]]:
    """(data, problems) for YAML a strict reader refuses for a repeated key or a custom tag:
    every value kept, tags ignored; raises as parse_yaml does for anything else."""
    loader = _LenientLoader(text)
    loader.first_line = first_line
    try:
        return loader.get_single_data(), loader.problems
    except RecursionError as exc:
        raise _too_deep() from exc
    finally:
        loader.dispose()


def parse_yaml(text: str, *, first_line: int = 1) -> Any:
    """yaml.safe_load(text) for YAML from the scanned model (a model card's front matter,
    which starts at `first_line` of its file); raises HostileData for aliases, a hostile
    number or nesting, yaml.YAMLError for what is not YAML."""
    loader = _BoundedLoader(text)
    loader.first_line = first_line
    try:
        return loader.get_single_data()
    except RecursionError as exc:
        raise _too_deep() from exc
    finally:
        loader.dispose()
