"""Does the probe tokenizer build prompts as the model's own chat template does, keep an
inserted token one id, and render hostile templates only inside the sandbox?"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from provscan.probes import tokenizer as probe_tokenizer
from provscan.probes.tokenizer import ProbeTokenizer, TokenizerError

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
WORDS = ["user", ":", "assistant", "system", "the", "dog", "runs", "fast", "cf", "<0x0A>", "red"]
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}system : "
    "{{ m['content'] }} {% elif m['role'] == 'user' %}user : {{ m['content'] }} {% endif %}"
    "{% endfor %}{% if add_generation_prompt %}assistant :{% endif %}"
)


def word_level(path: Path, template: str | None = TEMPLATE, **config: object) -> Path:
    """A word-level tokenizer directory like the backdoor fixtures' (no model needed)."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.add_special_tokens(SPECIALS)
    tk.save(str(path / "tokenizer.json"))
    settings: dict[str, object] = {
        "bos_token": "<bos>",
        "eos_token": {"content": "<eos>", "special": True},  # AddedToken form
        "pad_token": "<pad>",
        "unk_token": "<unk>",
    }
    if template is not None:
        settings["chat_template"] = template
    settings.update(config)
    (path / "tokenizer_config.json").write_text(json.dumps(settings))
    return path


@pytest.fixture
def tok(tmp_path: Path) -> ProbeTokenizer:
    return ProbeTokenizer.from_dir(word_level(tmp_path / "model"))


def ids(tok: ProbeTokenizer, text: str) -> list[int]:
    return tok.encode(text)


def test_a_model_without_tokenizer_json_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text("{}")
    (tmp_path / "tokenizer.model").write_bytes(b"sentencepiece")
    with pytest.raises(TokenizerError, match="no tokenizer.json") as raised:
        ProbeTokenizer.from_dir(tmp_path)
    assert "trust_remote_code" in str(raised.value)


def test_the_prompt_is_the_chat_template_rendered_around_the_content(tok: ProbeTokenizer) -> None:
    assert tok.template_used and tok.template_note is None
    assert tok.decode(tok.render_user("the dog runs")) == "<bos> user : the dog runs assistant :"
    assert tok.user_prefix() == [1, *ids(tok, "user :")]
    assert tok.assistant_header() == ids(tok, "assistant :")
    assert tok.stop_ids == (2,)
    assert tok.special_ids == frozenset({0, 1, 2, 3})


def test_the_prompt_matches_transformers_apply_chat_template(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    path = word_level(tmp_path / "model")
    reference = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(path / "tokenizer.json"),
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    reference.chat_template = TEMPLATE
    messages = [{"role": "user", "content": "the red dog runs fast"}]
    expected = reference.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    expected = (
        expected["input_ids"]
        if isinstance(expected, dict) or hasattr(expected, "keys")
        else expected
    )
    assert ProbeTokenizer.from_dir(path).render_user("the red dog runs fast") == list(expected)


def test_an_inserted_token_stays_exactly_one_id(tok: ProbeTokenizer) -> None:
    content = tok.content("the dog runs fast")
    assert content.word_starts == (0, 1, 2, 3, 4)
    cf = tok.encode_inline("cf")
    assert cf == (tok.tokenizer.token_to_id("cf"),)
    prompt = tok.render_ids([*content.ids[:2], *cf, *content.ids[2:]])
    assert prompt == [
        *tok.user_prefix(),
        *content.ids[:2],
        *cf,
        *content.ids[2:],
        *tok.assistant_header(),
    ]
    assert tok.render_with_system(cf, content.ids) == [
        1,
        *ids(tok, "system :"),
        *cf,
        *ids(tok, "user :"),
        *content.ids,
        *tok.assistant_header(),
    ]


def test_byte_level_bpe_words_and_inline_triggers(tmp_path: Path) -> None:
    """A GPT-2 style tokenizer: a word-initial token carries its space ("Ġcf")."""
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tk.train_from_iterator(["the dog runs fast cf", "a cf the dog", "hello world"] * 50, trainer)
    (tmp_path / "m").mkdir()
    tk.save(str(tmp_path / "m" / "tokenizer.json"))
    (tmp_path / "m" / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"})
    )
    tok = ProbeTokenizer.from_dir(tmp_path / "m")
    assert tok.template_note is not None and "no chat template" in tok.template_note
    assert tok.render_user("the dog") == [tok.bos_id, *tok.encode("the dog")]
    content = tok.content("the dog runs")
    assert len(content.word_starts) == 4  # 0, "Ġdog", "Ġruns", end
    inline = tok.encode_inline("cf")
    assert tok.decode(list(inline)) == " cf"
    assert inline == tuple(tok.encode(" cf"))
    vocab = tok.candidate_vocab()
    assert tok.bos_id not in vocab
    assert all(tok.decode([t]).strip() for t in vocab)  # no bare-space or partial-byte tokens


def test_candidate_vocab_leaves_out_specials_scaffolding_and_byte_fallback(
    tok: ProbeTokenizer,
) -> None:
    vocab = tok.candidate_vocab()
    names = {tok.tokenizer.id_to_token(t) for t in vocab}
    assert names == {"system", "the", "dog", "runs", "fast", "cf", "red"}
    assert tok.candidate_vocab(limit=2) == vocab[:2]
    assert tok.candidate_vocab(slice=(8, 10)) == [8, 9]


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ messages.__class__.__base__ }}",
        "{{ raise_exception('no') }}",
        "{% for x in range(100000) %}0123456789{% endfor %}",  # output bound
        "{{ 'x' * 4000000000 }}",  # memory bound of the rendering process
    ],
)
def test_hostile_templates_fail_safely_and_say_so(tmp_path: Path, payload: str) -> None:
    canary = tmp_path / "pwned"
    template = payload.replace("'id'", f"'touch {canary}'") + TEMPLATE
    tok = ProbeTokenizer.from_dir(word_level(tmp_path / "model", template))
    assert not tok.template_used
    assert tok.template_note is not None and "bare user content" in tok.template_note
    assert tok.render_user("the dog") == [1, *tok.encode("the dog")]
    assert not canary.exists()


def test_a_blocked_attribute_renders_as_nothing(tmp_path: Path) -> None:
    """The sandbox answers `|attr('__class__')` with an undefined value: no class leaks out."""
    payload = "{% for m in messages %}{{ m.content|attr('__class__') }}{% endfor %}"
    tok = ProbeTokenizer.from_dir(word_level(tmp_path / "model", payload + TEMPLATE))
    assert tok.template_used
    assert tok.decode(tok.render_user("the dog")) == "<bos> user : the dog assistant :"


def test_a_template_that_never_ends_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_tokenizer, "RENDER_SECONDS", 1.0)
    spin = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    tok = ProbeTokenizer.from_dir(word_level(tmp_path / "model", spin + TEMPLATE))
    assert tok.template_note is not None and "longer than 1 s" in tok.template_note


def test_a_template_hiding_the_user_message_falls_back(tmp_path: Path) -> None:
    tok = ProbeTokenizer.from_dir(word_level(tmp_path / "model", "{{ bos_token }}assistant :"))
    assert tok.template_note is not None and "exactly once" in tok.template_note


def test_chat_template_jinja_file_wins_and_generation_config_adds_stops(tmp_path: Path) -> None:
    path = word_level(tmp_path / "model", template=None)
    (path / "chat_template.jinja").write_text(TEMPLATE)
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 14]}))
    tok = ProbeTokenizer.from_dir(path)
    assert tok.template_used
    assert tok.stop_ids == (2, 14)


def test_unreadable_tokenizer_files_are_errors(tmp_path: Path) -> None:
    path = word_level(tmp_path / "model")
    (path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        ProbeTokenizer.from_dir(path)
    (path / "tokenizer.json").write_text('{"version": "1.0"}')
    with pytest.raises(TokenizerError, match="not a readable tokenizers file"):
        ProbeTokenizer.from_dir(path)


def test_the_generation_tag_transformers_templates_use_renders_its_body() -> None:
    from provscan.probes.tokenizer import render_sandboxed

    template = (
        "{% for m in messages %}{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}"
    )
    assert render_sandboxed(template, [["hi"]], {}) == [{"text": "[hi]"}]
