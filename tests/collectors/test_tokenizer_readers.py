"""The tokenizer readers read the bytes the way the real loaders do.

Each file is written and read back by the loader a model runs with (Hugging Face
`tokenizers`, llama.cpp's `gguf` reader); provscan's bounded readers must find the same
special tokens and the same vocabulary size, whatever form the bytes take (JSON escapes,
special tokens after tens of megabytes of vocabulary, a padded GGUF vocabulary).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.models import write_gguf
from provscan.collectors.serialization.gguf.scan import read_gguf_tokens
from provscan.collectors.tokenizer_read import read_tokenizer_tokens
from provscan.files import ScanFile

SPECIAL = ["<|begin_of_text|>", "<|eot_id|>", "<\uff5cUser\uff5c>", "<start_of_turn>"]


def _scan_file(path: Path) -> ScanFile:
    return ScanFile(rel=path.name, path=path, size=path.stat().st_size)


def _saved_tokenizer(path: Path, vocab_words: int) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    vocab = {f"w{i}": i for i in range(vocab_words)}
    vocab["[UNK]"] = vocab_words
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.add_special_tokens(SPECIAL)
    tokenizer.save(str(path))


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ("as saved", 50),
        ("ascii escapes", 50),  # "<\u007c..." and \uff5c: what a raw byte search misses
        ("added tokens last, after 6 MB of vocabulary", 400_000),
    ],
)
def test_tokenizer_json_reads_as_the_tokenizers_library_reads_it(
    tmp_path: Path, form: str, words: int
) -> None:
    from tokenizers import Tokenizer

    path = tmp_path / "tokenizer.json"
    _saved_tokenizer(path, words)
    document = json.loads(path.read_text(encoding="utf-8"))
    if form == "ascii escapes":
        text = json.dumps(document, ensure_ascii=True).replace("<|", "<\\u007c")
        path.write_text(text, encoding="ascii")
    elif form.startswith("added tokens last"):
        added = document.pop("added_tokens")
        document["added_tokens"] = added  # after "model": a 4 MiB head would miss them
        path.write_text(json.dumps(document), encoding="utf-8")
        assert path.stat().st_size > 6_000_000
    loaded = Tokenizer.from_file(str(path))
    loader_specials = {t.content for t in loaded.get_added_tokens_decoder().values()}
    assert loader_specials == set(SPECIAL)
    read = read_tokenizer_tokens(_scan_file(path), SPECIAL)
    assert set(SPECIAL) <= read.tokens
    assert read.vocab_size == loaded.get_vocab_size(with_added_tokens=True)


def test_gguf_token_list_reads_as_llama_cpp_reads_it(tmp_path: Path) -> None:
    import gguf

    tokens = [f"t{i}" for i in range(3000)] + SPECIAL
    path = write_gguf(tmp_path / "model.gguf", tokenizer_model="gpt2", tokens=tokens)
    field = gguf.GGUFReader(str(path)).fields["tokenizer.ggml.tokens"]
    loader_tokens = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
    assert loader_tokens == tokens
    read = read_gguf_tokens(_scan_file(path), [*SPECIAL, "not-there"])
    assert read is not None
    assert read.tokens == frozenset(SPECIAL) and read.count == len(loader_tokens)
