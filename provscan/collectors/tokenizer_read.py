"""The tokens a Hugging Face tokenizer file defines, read as JSON, streamed and bounded.

tokenizer.json (`added_tokens[*].content`, `model.vocab`), tokenizer_config.json
(`added_tokens_decoder[*].content`, `bos_token`, `additional_special_tokens` ...) and
special_tokens_map.json (its values). Searching raw bytes misses a token written with JSON
`\\uXXXX` escapes (DeepSeek's fullwidth bars often are) and anything past the bytes read;
parsing decodes every string.

Why ijson (https://github.com/ICRAR/ijson) and not provscan's bounded json loader
(provscan/parsing.py): a tokenizer.json is commonly 10-35 MB (Gemma 3's is about 33 MB),
more than the loader's 16 MiB `json_file_max`, and loading it whole builds a Python object
for every vocabulary entry and merge (hundreds of MB). The streaming parser keeps only the
tokens asked for and a few counters, whatever the file's size; the bounds below (bytes read,
nesting, tokens kept) are checked here on the parser's events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import ijson

from provscan.files import ScanFile, open_scanned
from provscan.parsing import MAX_NESTING

TOKENIZER_READ_MAX = 64 * 1024 * 1024  # bytes parsed of one file (real ones are under 40 MB)
TOKENS_KEPT_MAX = 8192  # added / special tokens kept of one file (real ones have < 1,100)
TOKEN_CHARS_MAX = 256  # a special token longer than this is not kept
# Parts of tokenizer_config.json / tokenizer.json whose strings are not token definitions.
_NOT_TOKENS = frozenset(
    {"chat_template", "model", "normalizer", "pre_tokenizer", "post_processor", "decoder"}
)


class TokenizerUnreadable(Exception):
    """The file could not be read as a tokenizer within the bounds; `problem` says why."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class TokenizerTokens:
    tokens: frozenset[str]  # added / special tokens, and asked-for tokens found in the vocab
    vocab_size: int | None  # highest token id + 1 (tokenizer.json only), None if unknown


class _Bounded:
    """A reader that refuses to hand the parser more than `limit` bytes."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream, self.limit, self.total = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        want = self.limit + 1 - self.total if size < 0 else min(size, self.limit + 1 - self.total)
        data = self.stream.read(max(want, 0))
        self.total += len(data)
        if self.total > self.limit:
            raise TokenizerUnreadable(f"larger than the {self.limit:,}-byte read bound")
        return data


def read_tokenizer_tokens(
    file: ScanFile,
    wanted: Iterable[str] = (),
    max_bytes: int = TOKENIZER_READ_MAX,
    *,
    partial: bool = False,
) -> TokenizerTokens:
    """The tokens `file` defines; `wanted` tokens are also looked up in `model.vocab`.

    Raises TokenizerUnreadable (never anything else for bad content) when the file is too
    large, too deeply nested, not JSON, not a JSON object or cannot be read. With
    `partial` (a stand-in holding only the file's first bytes, the rest zeros) the tokens
    read before the parse stops are returned instead, with no vocabulary size.
    """
    if file.size > max_bytes:
        raise TokenizerUnreadable(f"larger than the {max_bytes:,}-byte read bound")
    kept: set[str] = set()
    try:
        with open_scanned(file) as stream:
            events = ijson.parse(_Bounded(stream, max_bytes), use_float=True)
            return _walk(events, set(wanted), kept)
    except OSError as exc:
        raise TokenizerUnreadable(f"unreadable ({exc.strerror or exc})") from exc
    except (MemoryError, ImportError):
        raise  # provscan itself is broken, not the file
    except Exception as exc:  # noqa: BLE001  # ijson's errors for malformed JSON vary by backend
        if partial:
            return TokenizerTokens(tokens=frozenset(kept), vocab_size=None)
        if isinstance(exc, TokenizerUnreadable):
            raise
        raise TokenizerUnreadable(f"not valid JSON ({type(exc).__name__}: {exc})"[:300]) from exc


def _walk(
    events: Iterable[tuple[str, str, Any]], wanted: set[str], kept: set[str]
) -> TokenizerTokens:
    depth = 0
    max_id = -1
    pieces = 0  # Unigram vocab: a list of [piece, score]
    vocab_kind: str | None = None
    for prefix, event, value in events:
        if depth == 0 and event != "start_map":
            raise TokenizerUnreadable("a JSON value that is not an object")
        if event in ("start_map", "start_array"):
            depth += 1
            if depth > MAX_NESTING:
                raise TokenizerUnreadable(f"nested deeper than {MAX_NESTING} levels")
            if prefix == "model.vocab":
                vocab_kind = event
            elif vocab_kind == "start_array" and prefix == "model.vocab.item" and depth == 4:
                pieces += 1
            continue
        if event in ("end_map", "end_array"):
            depth -= 1
            continue
        head = prefix.split(".", 1)[0]
        if event == "map_key":
            if prefix == "model.vocab" and value in wanted:
                kept.add(value)
            continue
        if event == "number" and isinstance(value, int):
            if prefix == "added_tokens.item.id" or (
                vocab_kind == "start_map" and depth == 3 and prefix.startswith("model.vocab.")
            ):
                max_id = max(max_id, value)
            continue
        if event != "string" or not isinstance(value, str):
            continue
        if head in ("added_tokens", "added_tokens_decoder"):
            if prefix.endswith(".content"):
                _keep(kept, value, wanted)
        elif head == "model":
            if prefix == "model.vocab.item.item" and value in wanted:
                kept.add(value)
        elif head not in _NOT_TOKENS and depth <= 3:
            # special_tokens_map.json values, tokenizer_config.json bos_token / eos_token /
            # additional_special_tokens, as plain strings or {"content": ...} objects.
            _keep(kept, value, wanted)
    if depth != 0:
        raise TokenizerUnreadable("the JSON document ends early")
    size = max(max_id + 1, pieces)
    return TokenizerTokens(tokens=frozenset(kept), vocab_size=size if size > 0 else None)


def _keep(kept: set[str], value: str, wanted: set[str]) -> None:
    if value in wanted or (len(kept) < TOKENS_KEPT_MAX and len(value) <= TOKEN_CHARS_MAX):
        kept.add(value)
