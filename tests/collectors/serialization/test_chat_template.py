"""Chat-template checks: public SSTI payloads, and the render-time name building that hides them
from a literal search, are flagged by the static check and by the sandboxed render alike; real
chat templates pass both."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fixtures.corpus_templates import REAL_TEMPLATES, template_samples
from fixtures.loader_proof import runs_payload
from fixtures.serialization_corpus import Sample
from provscan.collectors.serialization.chat_template import lint as chat_template
from provscan.collectors.serialization.chat_template import sandbox as chat_template_sandbox
from provscan.collectors.serialization.chat_template.lint import (
    SANDBOX_PATTERNS,
    UNCHECKED,
    lint_chat_template,
    sandbox_lint,
    static_lint,
)
from provscan.collectors.serialization.gguf.scan import scan_tokenizer_config_template
from provscan.files import ScanFile
from provscan.limits import Limits
from provscan.pipeline import scan
from provscan.report import Finding, Severity
from tests.conftest import REPO

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

QWEN = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- else %}
        {{- 'You are a helpful assistant.\\n\\n' }}
    {%- endif %}
    {{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object<|im_end|>\\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role == "assistant" and message.tool_calls %}
        {{- '<|im_start|>' + message.role }}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' + tool_call.name + '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""

GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

MISTRAL = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}"
    "{%- endif %}{{- bos_token }}{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must alternate') }}"
    "{%- endif %}{%- if message['role'] == 'user' %}"
    "{%- if loop.first and system_message is defined %}"
    "{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "{%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token}}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported!') }}"
    "{%- endif %}{%- endfor %}{% for m in messages %}{% if loop.last %}{% break %}{% endif %}"
    "{% endfor %}"
)

REAL = {
    "llama3": LLAMA3,
    "qwen": QWEN,
    "gemma": GEMMA,
    "mistral": MISTRAL,
    # The published templates, verbatim (fixtures/corpus_templates.py cites each source).
    **{f"published-{name}": template for name, (template, _) in REAL_TEMPLATES.items()},
}

PAYLOADS = {
    "mro-subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler-globals": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "lipsum-globals": "{{ lipsum.__globals__['os'].popen('id') }}",
    "attr-hex-escape": "{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "concat-dunder": "{% set x = '_' ~ '_class_' ~ '_' %}{{ ''|attr(x) }}",
    "mul-underscore": "{{ ''|attr('_'*2 + 'class' + '_'*2) }}",
    "percent-c": "{{ ''|attr('%c%cclass%c%c' % (95, 95, 95, 95)) }}",
    "join-dunder": "{{ ''|attr(['_','_','class','_','_']|join) }}",
    "template-reference": "{{ self._TemplateReference__context.cycler.__init__ }}",
    "joiner": "{{ joiner.__init__.__globals__ }}",
    "namespace-init": "{{ namespace.__init__.__globals__.os.system('id') }}",
    "request-config": "{{ request.application.__self__._get_data_for_json }}{{ config.items() }}",
    "getattr-import": "{{ getattr(x, 'eval') }}{% import 'os' as os %}",
    "dict-keyword": "{{ ''|attr(dict(__class__=1)|first) }}",
}


# Payloads a chat runtime's sandbox never sees refused: `request`/`config` are not defined
# there (Flask names), and an import of a template that does not exist fails to load.
NOT_REACHED_IN_A_CHAT_RUNTIME = {"request-config", "getattr-import"}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_templates_are_clean(name: str) -> None:
    assert static_lint(REAL[name]) == []
    assert sandbox_lint(REAL[name]) == []  # rendered, tools and all, without one refusal
    assert lint_chat_template(REAL[name]) == []


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payloads_are_flagged(name: str) -> None:
    hits = static_lint(REAL["llama3"] + PAYLOADS[name])
    assert hits, name
    assert all(pattern != UNCHECKED for pattern, _ in hits)


@pytest.mark.parametrize("name", sorted(set(PAYLOADS) - NOT_REACHED_IN_A_CHAT_RUNTIME))
def test_the_sandbox_refuses_payloads(name: str) -> None:
    hits = sandbox_lint(REAL["llama3"] + PAYLOADS[name])
    assert {pattern for pattern, _ in hits} & set(SANDBOX_PATTERNS.values()), hits
    assert all(pattern != UNCHECKED for pattern, _ in hits)


def test_hits_name_the_pattern_and_quote_it() -> None:
    hits = dict(static_lint(PAYLOADS["cycler-globals"]))
    assert {"dunder-attribute", "jinja-global-gadget", "dangerous-attribute"} <= set(hits)
    assert "cycler" in hits["jinja-global-gadget"]
    assert "\\x5f" in dict(static_lint(PAYLOADS["attr-hex-escape"]))["escaped-underscore"]
    refused = dict(sandbox_lint(PAYLOADS["cycler-globals"]))["sandbox-refused-attribute"]
    assert "'__init__'" in refused


def _without_jinja(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_template, "_jinja_ast", lambda template: None)
    monkeypatch.setattr(chat_template, "_jinja_available", lambda: False)


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_regex_fallback_flags_payloads(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _without_jinja(monkeypatch)
    assert [pattern for pattern, _ in lint_chat_template(PAYLOADS[name]) if pattern != UNCHECKED]


@pytest.mark.parametrize("name", sorted(REAL))
def test_regex_fallback_is_quiet_on_real_templates(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Quiet, but never a silent pass: without jinja2 nothing was rendered, and it says so.
    _without_jinja(monkeypatch)
    [(pattern, reason)] = lint_chat_template(REAL[name])
    assert pattern == UNCHECKED
    assert "jinja2 is not installed" in reason


def test_without_jinja2_a_template_is_unchecked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_jinja(monkeypatch)
    config = _config(tmp_path, "tokenizer_config.json", json.dumps({"chat_template": QWEN}))
    [finding] = scan_tokenizer_config_template(config, Limits())
    assert (finding.rule_id, finding.severity) == ("SER-CHAT-TEMPLATE-UNCHECKED", Severity.HIGH)
    assert "jinja2 is not installed" in finding.message


def test_unparseable_template_is_unchecked_and_still_linted() -> None:
    hits = lint_chat_template("{% for x in %}{{ x.__class__ }}")
    assert hits[0][0] == UNCHECKED
    assert "dunder-attribute" in {name for name, _ in hits}


def test_deep_nesting_does_not_crash() -> None:
    hits = lint_chat_template("{{ " + "(" * 50_000 + "1" + ")" * 50_000 + " }}")
    assert hits[0][0] == UNCHECKED


def _config(tmp_path: Path, name: str, content: str) -> ScanFile:
    path = tmp_path / name
    path.write_text(content)
    return ScanFile(rel=name, path=path, size=path.stat().st_size)


def test_tokenizer_config_templates(tmp_path: Path) -> None:
    clean = _config(tmp_path, "tokenizer_config.json", json.dumps({"chat_template": QWEN}))
    assert scan_tokenizer_config_template(clean, Limits()) == []
    named = json.dumps(
        {"chat_template": [{"name": "default", "template": GEMMA},
                           {"name": "tool_use", "template": PAYLOADS["lipsum-globals"]}]}
    )  # fmt: skip
    findings = scan_tokenizer_config_template(
        _config(tmp_path, "tokenizer_config.json", named), Limits()
    )
    assert [(f.rule_id, f.severity) for f in findings] == [
        ("SER-CHAT-TEMPLATE-INJECTION", Severity.CRITICAL)
    ]
    assert findings[0].evidence["template"] == "chat_template[tool_use]"
    jinja = _config(tmp_path, "chat_template.jinja", PAYLOADS["mro-subclasses"])
    assert scan_tokenizer_config_template(jinja, Limits())[0].severity is Severity.CRITICAL
    no_template = _config(tmp_path, "tokenizer_config.json", json.dumps({"bos_token": "<s>"}))
    assert scan_tokenizer_config_template(no_template, Limits()) == []


def test_unreadable_configs_are_unchecked(tmp_path: Path) -> None:
    cases = [
        _config(tmp_path, "a.json", "{not json"),
        _config(tmp_path, "b.json", json.dumps({"chat_template": 3})),
        _config(tmp_path, "c.json", json.dumps({"chat_template": "x" * 100})),
    ]
    limits = Limits(json_file_max=64)
    results = [scan_tokenizer_config_template(c, Limits()) for c in cases[:2]]
    results.append(scan_tokenizer_config_template(cases[2], limits))
    for findings in results:
        assert [(f.rule_id, f.severity) for f in findings] == [
            ("SER-CHAT-TEMPLATE-UNCHECKED", Severity.HIGH)
        ]


def test_tokenizer_config_templates_are_routed_by_name(tmp_path) -> None:
    import json

    from provscan.collectors.serialization.scan import scan_serialization
    from provscan.files import ScanFile, SniffedFile
    from provscan.limits import Limits
    from provscan.report import FileFormat

    evil = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps({"chat_template": evil, "eos_token": "</s>"}))
    file = SniffedFile(
        ScanFile(rel="tokenizer_config.json", path=path, size=path.stat().st_size), FileFormat.JSON
    )
    findings = scan_serialization([file], Limits()).findings
    assert [f.rule_id for f in findings] == ["SER-CHAT-TEMPLATE-INJECTION"]


def test_a_namespace_attribute_named_like_a_module_is_not_a_payload() -> None:
    # Templates keep the system prompt in `ns.system`; os.system is another matter.
    template = (
        "{%- set ns = namespace(system='') -%}{%- for m in messages -%}"
        "{%- if m['role'] == 'system' -%}{%- set ns.system = m['content'] -%}"
        "{%- else -%}{{ ns.system + m['content'] }}{%- endif -%}{%- endfor -%}"
    )
    assert lint_chat_template(template) == []


@pytest.mark.parametrize(
    "template",
    [
        "{% set ns = namespace(a=1) %}{% set ns = x %}{{ ns.system('id') }}",
        "{% set ns = namespace(a=1) %}{% for ns in y %}{{ ns.system('id') }}{% endfor %}",
        "{{ foo.os.system('id') }}",
    ],
)
def test_a_name_not_only_ever_a_namespace_keeps_its_attributes_flagged(template: str) -> None:
    assert [name for name, _ in lint_chat_template(template)] == ["dangerous-attribute"]


# --------------------------------------------------------------- names built at render time

# Two underscores from the repr of a dict view: the source of these templates holds no '_'
# in a string literal, so only where the built name is *used* can give them away.
U = "{%- set u = ({}.items()|string)[4] * 2 %}"

# name -> (template, the pattern that must catch it)
EVASIONS: dict[str, tuple[str, str]] = {
    "subscript-tilde": (U + "{{ x[u ~ 'class' ~ u] }}", "computed-key"),
    "subscript-plus": (U + "{{ x[u + 'class' + u] }}", "computed-key"),
    "subscript-join": ("{{ x[['_', '_', 'class', '_', '_']|join] }}", "computed-key"),
    "subscript-replace": ("{{ x['XXclassXX'|replace('X', '_')] }}", "computed-key"),
    "subscript-format": (U + "{{ x['%sclass%s'|format(u, u)] }}", "computed-key"),
    "subscript-reverse": (U + "{{ x[u ~ ('ssalc'|reverse) ~ u] }}", "computed-key"),
    "subscript-lower": (U + "{{ x[u ~ ('CLASS'|lower) ~ u] }}", "computed-key"),
    "subscript-string": (U + "{{ x[u ~ (['class']|first|string) ~ u] }}", "computed-key"),
    "attr-built": (U + "{{ x|attr(u ~ 'class' ~ u) }}", "computed-attribute"),
    "attr-splat": ("{{ x|attr(*names) }}", "computed-attribute"),
    "map-attribute": (U + "{{ [x]|map(attribute=u ~ 'class' ~ u)|first }}", "computed-attribute"),
    "map-attr-filter": (U + "{{ [x]|map('attr', u ~ 'class' ~ u)|first }}", "computed-attribute"),
    "map-chosen-filter": ("{% set f = 'at' ~ 'tr' %}{{ [x]|map(f, 'y') }}", "computed-filter-name"),
    "selectattr": (U + "{{ [x]|selectattr(u ~ 'class' ~ u)|list }}", "computed-attribute"),
    "sum-attribute": (U + "{{ [x]|sum(attribute=u ~ 'class' ~ u) }}", "computed-attribute"),
    "join-attribute": (U + "{{ [x]|join(',', u ~ 'class' ~ u) }}", "computed-attribute"),
    "literal-attribute": ("{{ [x]|map(attribute='mro')|list }}", "dangerous-attribute"),
    "str-format": (U + "{{ ('{0.' ~ u ~ 'class' ~ u ~ '}').format(x) }}", "format-method"),
    "set-indirection": (
        U + "{% set k = u ~ 'class' ~ u %}{% set j = k %}{{ x[j] }}",
        "computed-key",
    ),
    "namespace-value": (
        U + "{% set ns = namespace(k=u ~ 'class' ~ u) %}{{ x[ns.k] }}",
        "computed-key",
    ),
    "namespace-set": (
        U + "{% set ns = namespace() %}{% set ns.k = u ~ 'mro' %}{{ x[ns.k] }}",
        "computed-key",
    ),
    "macro-argument": (
        "{% macro get(o, k) %}{{ o[k] }}{% endmacro %}" + U + "{{ get(x, u ~ 'class' ~ u) }}",
        "computed-key",
    ),
    "with-block": (U + "{% with k = u ~ 'class' ~ u %}{{ x[k] }}{% endwith %}", "computed-key"),
    "loop-built-list": (
        U + "{% for k in [u ~ 'class' ~ u] %}{{ x[k] }}{% endfor %}",
        "computed-key",
    ),
    "loop-object": (
        U + "{% for m in messages %}{{ loop[u ~ 'class' ~ u] }}{% endfor %}",
        "computed-key",
    ),
    "tuple-key": ("{{ x[a, b] }}", "computed-key"),
    "cycler-object": ("{% set c = cycler %}", "jinja-global-gadget"),
    "joiner-object": ("{% set j = joiner() %}", "jinja-global-gadget"),
    "lipsum-object": ("{{ lipsum }}", "jinja-global-gadget"),
    "namespace-class": ("{% set n = namespace %}", "jinja-global-gadget"),
    "dict-class": ("{{ x[dict] }}", "jinja-global-gadget"),
    "self-object": ("{{ self }}", "jinja-global-gadget"),
    "hex-escape": ("{{ x['\\x5f\\x5fclass\\x5f\\x5f'] }}", "dunder-attribute"),
    "unicode-escape": ("{{ x['\\u005f\\u005fclass\\u005f\\u005f'] }}", "dunder-attribute"),
    "private-string": ("{% set n = '_module' %}", "private-string"),
    "dunder-keyword": ("{{ dict(__class__=1)|first }}", "dunder-string"),
    "private-keyword": ("{{ dict(_module=1)|first }}", "private-string"),
    "underscore-list": ("{% set parts = ['_', '_'] %}", "underscore-string-building"),
    "private-namespace-attribute": (
        "{% set ns = namespace() %}{% set ns._x = 1 %}",
        "private-attribute",
    ),
}


def test_the_underscore_source_alone_is_not_what_is_flagged() -> None:
    # The evasions below must be caught where the built name is used, not by this prelude.
    assert static_lint(U) == []


@pytest.mark.parametrize("name", sorted(EVASIONS))
def test_names_built_at_render_time_are_flagged(name: str) -> None:
    template, pattern = EVASIONS[name]
    assert pattern in {found for found, _ in static_lint(template)}, static_lint(template)


@pytest.mark.parametrize("name", ["subscript-tilde", "subscript-replace", "macro-argument"])
def test_regex_fallback_flags_computed_keys(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _without_jinja(monkeypatch)
    assert "computed-key" in {pattern for pattern, _ in lint_chat_template(EVASIONS[name][0])}


# Subscripts real templates write: by a number, a slice, a name only ever given literals, on
# a literal container, or on the container the key was drawn from. None reads an attribute.
SAFE_SUBSCRIPTS = [
    "{% for m in messages %}{{ messages[loop.index0 - 1].role }}{% endfor %}",
    "{% for m in messages %}{% if messages[loop.index0 + 1] is defined %}{% endif %}{% endfor %}",
    "{{ out[:-1] }}{{ messages[::-1] }}{{ messages[1:] }}",
    "{% for i in range(messages|length - 1, -1, -1) %}{{ messages[i].role }}{% endfor %}",
    "{% set i = messages|length - 1 %}{% set j = i - 1 %}{{ messages[j] }}",
    "{% set ns = namespace(i=0) %}{% for m in messages %}{% set ns.i = ns.i + 1 %}{% endfor %}"
    "{{ messages[ns.i - 1] }}",
    "{% for key in params if key not in done %}{{ params[key] }}{% endfor %}",  # Qwen3-Coder
    "{% for key, value in params|items %}{{ params[key] }}{% endfor %}",
    "{% set types = {'string': 'str', 'integer': 'int'} %}{{ types[spec.type] }}",  # Hermes
    "{% for field, label in [('maximum', 'Maximum')] %}{{ param[field] }}{% endfor %}",
    "{% set key = 'content' %}{{ message[key] }}",
]

# Each is one of the above with the one change that lets the key name an attribute.
UNSAFE_SUBSCRIPTS = [
    "{% set ns = namespace(i=0) %}{% set alias = ns %}{% set alias.i = k %}{{ x[ns.i] }}",
    "{% for key in params %}{% set params = other %}{{ params[key] }}{% endfor %}",
    "{% for key in params recursive %}{{ params[key] }}{{ loop(other) }}{% endfor %}",
    "{% for x in xs %}{% set l = loop %}{% for key in l %}{{ l[key] }}{% endfor %}{% endfor %}",
    "{% set range = r %}{% for i in range(3) %}{{ messages[i] }}{% endfor %}",
    "{% set loop = l %}{{ messages[loop.index0] }}",
    "{% set i = 0 %}{% set i = k ~ 'x' %}{{ messages[i] }}",
    "{% set types = {'string': t} %}{{ types[spec.type] }}",
    "{% for field in ['maximum', k] %}{{ param[field] }}{% endfor %}",
]


@pytest.mark.parametrize("template", SAFE_SUBSCRIPTS)
def test_subscripts_that_only_index_are_clean(template: str) -> None:
    assert static_lint(template) == []


@pytest.mark.parametrize("template", UNSAFE_SUBSCRIPTS)
def test_subscripts_that_may_read_an_attribute_are_flagged(template: str) -> None:
    assert "computed-key" in {pattern for pattern, _ in static_lint(template)}


# ------------------------------------------------------------------- the sandboxed render


def test_a_refusal_is_critical_and_names_the_attribute(tmp_path: Path) -> None:
    template = QWEN + PAYLOADS["concat-dunder"]
    config = _config(tmp_path, "tokenizer_config.json", json.dumps({"chat_template": template}))
    [finding] = scan_tokenizer_config_template(config, Limits())
    assert (finding.rule_id, finding.severity) == ("SER-CHAT-TEMPLATE-INJECTION", Severity.CRITICAL)
    assert "sandbox-refused-attribute" in finding.evidence["patterns"]
    assert "refused attribute '__class__' of a str object" in finding.evidence["excerpts"]


def test_a_refused_mutation_is_unchecked_not_critical() -> None:
    # A list's append reaches no internals; the immutable sandbox refuses it all the same.
    [(pattern, reason)] = sandbox_lint("{% set seen = [] %}{% set _ = seen.append(1) %}")
    assert pattern == UNCHECKED
    assert "'append'" in reason


def test_a_render_that_never_ends_is_unchecked_and_keeps_its_refusals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chat_template_sandbox, "RENDER_SECONDS", 1.0)
    endless = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    hits = sandbox_lint("{{ messages.__class__ }}" + endless)
    assert ("sandbox-refused-attribute", "refused attribute '__class__' of a list object") in hits
    assert any(p == UNCHECKED and "ran past 1 s" in reason for p, reason in hits)


def test_the_rendered_output_is_bounded() -> None:
    [(pattern, reason)] = sandbox_lint("{% for i in range(99999) %}{{ 'x' * 100 }}{% endfor %}")
    assert pattern == UNCHECKED
    assert str(chat_template_sandbox.RENDER_MAX_CHARS) in reason


def test_the_template_goes_in_on_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], dict[str, object]]] = []

    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        calls.append((argv, kwargs))
        return subprocess.CompletedProcess(argv, 0, b'{"done": true}\n', b"")

    monkeypatch.setattr(chat_template_sandbox.subprocess, "run", fake_run)
    template = "{{ 'a template that must not be a command-line argument' }}"
    assert chat_template_sandbox.render_check(template).refusals == ()
    [(argv, kwargs)] = calls
    assert not any("must not be" in arg for arg in argv)
    assert kwargs["input"] == template.encode()
    assert argv[1:3] == ["-I", "-B"]  # isolated: no PYTHON* variables, no user site
    assert kwargs["timeout"] == chat_template_sandbox.RENDER_SECONDS


def test_a_child_that_dies_is_unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(argv, -9, b"", b"")

    monkeypatch.setattr(chat_template_sandbox.subprocess, "run", killed)
    result = chat_template_sandbox.render_check("{{ 'x' }}")
    assert result.unchecked == "the sandboxed render did not finish: stopped by SIGKILL"


def test_the_child_caps_itself() -> None:
    probe = (
        "import resource\n"
        "from provscan.collectors.serialization.chat_template.sandbox import _limit_self\n"
        "_limit_self()\n"
        "print([resource.getrlimit(getattr(resource, n))[0] for n in "
        "('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_CORE', 'RLIMIT_NPROC')])\n"
    )
    root = REPO
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=root
    ).stdout
    cpu, memory, size, core, processes = json.loads(out)
    assert (cpu, size, core, processes) == (chat_template_sandbox.RENDER_CPU_SECONDS, 0, 0, 0)
    assert 0 < memory <= chat_template_sandbox.RENDER_MEMORY


def test_child_output_is_parsed_defensively() -> None:
    stdout = (
        b"not json\n[1, 2]\n"
        b'{"refused": {"kind": "attribute", "name": "__class__", "owner": "str object"}}\n'
        b'{"refused": {"kind": "attribute", "name": "__class__", "owner": "str object"}}\n'
        b'{"done": true}\n'
    )
    refusals, done, stopped = chat_template_sandbox._parse(stdout)
    assert [r.describe() for r in refusals] == ["refused attribute '__class__' of a str object"]
    assert done and stopped is None


# ------------------------------------------------------------ the template sample corpus

# Names only, at collection, so that every sample is its own test id.
with tempfile.TemporaryDirectory() as _catalogue:
    SAMPLES = template_samples(Path(_catalogue), Path(_catalogue) / "canary")
MALICIOUS = [pytest.param(s, id=s.name) for s in SAMPLES if s.malicious]
BENIGN = [pytest.param(s, id=s.name) for s in SAMPLES if not s.malicious]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("templates")
    template_samples(root / "files", root / "canary")
    return root / "files", root / "canary"


def _template(templates: tuple[Path, Path], sample: Sample) -> str:
    config = json.loads((templates[0] / sample.path).read_text(encoding="utf-8"))
    return str(config["chat_template"])


def _scan_sample(templates: tuple[Path, Path], sample: Sample, tmp_path: Path) -> list[Finding]:
    """Scan a model directory holding only this sample, as `provscan inspect DIR` would."""
    files, canary = templates
    canary.unlink(missing_ok=True)
    target = tmp_path / "model"
    (target / sample.path).parent.mkdir(parents=True)
    shutil.copyfile(files / sample.path, target / sample.path)
    findings = list(scan(str(target)).findings)
    assert not canary.exists(), f"scanning {sample.name} ran its payload"
    return findings


def test_the_corpus_covers_the_techniques() -> None:
    malicious = [s for s in SAMPLES if s.malicious]
    assert len(malicious) >= 8 and len(SAMPLES) - len(malicious) == 6
    for sample in SAMPLES:
        assert sample.loader == "jinja" and not sample.benign_but_unknown
        assert sample.path == f"{sample.name.removeprefix('template-')}/tokenizer_config.json"
        assert "https://" in sample.source


@pytest.mark.parametrize("sample", MALICIOUS)
def test_each_payload_runs_under_an_unsandboxed_renderer(
    templates: tuple[Path, Path], sample: Sample
) -> None:
    files, canary = templates
    try:
        assert runs_payload(sample.loader, files / sample.path, canary), sample.name
    finally:
        canary.unlink(missing_ok=True)


@pytest.mark.parametrize("sample", MALICIOUS)
def test_each_payload_is_critical_and_never_runs(
    templates: tuple[Path, Path], sample: Sample, tmp_path: Path
) -> None:
    findings = _scan_sample(templates, sample, tmp_path)
    assert [
        f.rule_id
        for f in findings
        if f.severity is Severity.CRITICAL and f.location and f.location.path == sample.path
    ] == ["SER-CHAT-TEMPLATE-INJECTION"], findings


@pytest.mark.parametrize("sample", MALICIOUS)
def test_each_check_alone_catches_each_payload(
    templates: tuple[Path, Path], sample: Sample
) -> None:
    template = _template(templates, sample)
    for check in (static_lint, sandbox_lint):
        assert [pattern for pattern, _ in check(template) if pattern != UNCHECKED], check.__name__


@pytest.mark.parametrize("sample", BENIGN)
def test_published_templates_pass_both_checks(
    templates: tuple[Path, Path], sample: Sample, tmp_path: Path
) -> None:
    findings = _scan_sample(templates, sample, tmp_path)
    assert [f for f in findings if f.rule_id.startswith("SER-CHAT-TEMPLATE")] == []
