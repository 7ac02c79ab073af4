"""Chat-template linting: public SSTI payloads are flagged, real chat templates are not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provscan.collectors.base import ScanFile
from provscan.collectors.serialization import chat_template
from provscan.collectors.serialization.chat_template import UNCHECKED, lint_chat_template
from provscan.collectors.serialization.gguf_scan import scan_tokenizer_config_template
from provscan.limits import Limits
from provscan.report import Severity

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

REAL = {"llama3": LLAMA3, "qwen": QWEN, "gemma": GEMMA, "mistral": MISTRAL}

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


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_templates_are_clean(name: str) -> None:
    assert lint_chat_template(REAL[name]) == []


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payloads_are_flagged(name: str) -> None:
    hits = lint_chat_template(REAL["llama3"] + PAYLOADS[name])
    assert hits, name
    assert all(pattern != UNCHECKED for pattern, _ in hits)


def test_hits_name_the_pattern_and_quote_it() -> None:
    hits = dict(lint_chat_template(PAYLOADS["cycler-globals"]))
    assert {"dunder-attribute", "jinja-global-gadget", "dangerous-attribute"} <= set(hits)
    assert "cycler" in hits["jinja-global-gadget"]
    assert "\\x5f" in dict(lint_chat_template(PAYLOADS["attr-hex-escape"]))["escaped-underscore"]


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_regex_fallback_flags_payloads(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(chat_template, "_jinja_ast", lambda template: None)
    monkeypatch.setattr(chat_template, "_jinja_available", lambda: False)
    assert lint_chat_template(PAYLOADS[name])


@pytest.mark.parametrize("name", sorted(REAL))
def test_regex_fallback_is_quiet_on_real_templates(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(chat_template, "_jinja_ast", lambda template: None)
    monkeypatch.setattr(chat_template, "_jinja_available", lambda: False)
    assert lint_chat_template(REAL[name]) == []


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

    from provscan.collectors.base import ScanFile, SniffedFile
    from provscan.collectors.serialization.scan import scan_serialization
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
